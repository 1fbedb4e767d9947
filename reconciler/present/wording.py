"""Pure: the English of the planner's decisions. One function words each kind of reason, note and warning.

The planner decides in values (`reconciler.plan.reasons`); the text plan, `--json`'s `reason` and the
markdown comment all say them with these words. A kind left out here fails type-checking (`assert_never`).
"""

from __future__ import annotations

from typing import assert_never

from reconciler.observe.facts import SkippedRecord, describe_training
from reconciler.plan import reasons as r
from reconciler.text import plural

KEEPS_WAITING = "nothing is changed or resubmitted"
FORGET = "no longer in the manifests: forget"

# Kinds whose sentences differ only in their words around one field (`{}`): a training under its task name, a
# generation of its shape, a model that stays in the account.
_TRAINS_AS: dict[type[r.PaidTraining], str] = {
    r.DefinitionChanged: "definition changed: retrain as {}",
    r.RetrainRequested: "--replace: train again as {}",
    r.UnansweredNotListed: "a previous submit of {} got no answer and the account does not list it: "
    "look it up again, then train it only if it is still missing",
}
_GENERATES: dict[type[r.PaidGeneration], str] = {
    r.NewGeneration: "{}",
    r.GenerationChanged: "definition changed: {}",
    r.RunAgainRequested: "--replace: run it again ({})",
    r.StoppedAfterHistory: "its images moved to history, then the apply stopped: run it again ({})",
}
_MODEL_STAYS: dict[type[r.Note], str] = {
    r.CurrentModelStays: "(the current model {} stays in the account)",
    r.OldModelStays: "(the old model {} stays in the account: Novita has no delete)",
}


def _copied(source: str, owner: str, images: str, where: str) -> str:
    if source == "state":
        return f"same request as {owner}: copy its {images} from {where} (free)"
    if source == "history":
        return f"made before by {owner}: copy its {images} from its history {where} (free)"
    if source == "forgotten":
        return f"made before by {owner} (forgotten): copy its {images} from {where} (free)"
    if source == "folder":
        return f"its {images} are in {where} (sidecar matches): copy them (free)"
    return f"made before by {owner}: copy its {images} from the outputs remote (free)"


def reason_text(reason: r.Reason) -> str:
    """The line beside a change's address: why it is planned."""
    if isinstance(reason, r.PaidTraining):
        return _paid_training(reason)
    if isinstance(reason, r.PaidGeneration):
        return _paid_generation(reason)
    if isinstance(reason, r.Waiting):
        return _waiting(reason)
    if isinstance(reason, r.Reusing):
        return _reusing(reason)
    if isinstance(reason, r.Uploading):
        return _uploading(reason)
    return _forgetting(reason)


def _paid_training(reason: r.PaidTraining) -> str:
    match reason:
        case r.NewTraining(task_name, images):
            return f"train as {task_name} ({images} images)"
        case r.DefinitionChanged(task_name) | r.RetrainRequested(task_name) | r.UnansweredNotListed(task_name):
            return _TRAINS_AS[type(reason)].format(task_name)
        case r.DatasetChanged(dataset, task_name):
            return f"dataset {dataset} changed: retrain as {task_name}"
        case r.TrainingMissing(task_name, trained):
            gone = "is no longer in" if trained else "vanished from"
            return f"training {task_name} {gone} the account: retrain"
        case r.TrainingEnded(task_name, status):
            return f"training {task_name} ended {status}: retrain"
        case r.PreviousTrainingFailed(failed_task, error, task_name):
            return f"the previous training {failed_task} failed{_why(error)}: retrain as {task_name}"
        case _:
            assert_never(reason)


def _paid_generation(reason: r.PaidGeneration) -> str:
    match reason:
        case (
            r.NewGeneration(shape)
            | r.GenerationChanged(shape)
            | r.RunAgainRequested(shape)
            | r.StoppedAfterHistory(shape)
        ):
            return _GENERATES[type(reason)].format(shape_text(shape))
        case r.WaitsForModels(shape, models):
            return f"{shape_text(shape)}; waits for {_models(models)}"
        case r.ModelsPending(models, retrained):
            return f"depends on {_models(models)}, which {'is retrained' if retrained else 'is not trained yet'}"
        case r.ModelsRetrained(models):
            return f"depends on {_models(models)}, which was retrained"
        case r.ImagesMissing(missing, total, folder):
            return f"{missing} of its {total} images are missing or changed in {folder}: regenerate"
        case r.GenerationVanished(task_id):
            return f"generation task {task_id} vanished: run it again"
        case r.GenerationFailed(task_id, error):
            return f"generation task {task_id} failed ({error or 'no reason given'}): run it again"
        case r.PreviousRunFailed(error):
            return f"the previous run failed{_why(error)}: run it again"
        case r.UnansweredResubmit():
            return "the previous submit got no answer: submitting again (may be paid twice)"
        case _:
            assert_never(reason)


def _waiting(reason: r.Waiting) -> str:
    match reason:
        case r.UnansweredLookup(task_name):
            return (
                f"a previous submit of {task_name} got no answer: look it up by name and wait for it, do not resubmit"
            )
        case r.UnansweredInFlight(task_name, seen):
            return f"training {task_name} in flight ({task_status(seen)}): wait, do not resubmit"
        case r.TrainingFinished(task_name, seen):
            return f"training {task_name} finished ({task_status(seen)}): record it"
        case r.TrainingInFlight(task_name, seen):
            status = f" ({task_status(seen)})" if seen is not None else ""
            return f"wait for training {task_name}, in flight{status}; {KEEPS_WAITING}"
        case r.FoundInAccount(task_name, seen, finished):
            wait = "" if finished else " and wait for it"
            return f"found in the account as {task_name} ({task_status(seen)}): adopt{wait}"
        case r.GenerationInFlight(task_id, status, progress):
            shown = f" ({generation_status(status, progress)})" if status is not None else ""
            return f"wait for generation task {task_id}, in flight{shown}; {KEEPS_WAITING}"
        case _:
            assert_never(reason)


def _reusing(reason: r.Reusing) -> str:
    match reason:
        case r.FoundOnDisk(images, folder):
            return f"its {images} images are already in {folder} (sidecar matches): adopt"
        case r.FoundInOutputsRemote(images):
            return f"its {images} images are in the outputs remote (sidecar matches): adopt and fetch them (free)"
        case r.TrainedUnderAnotherName(task_name, source, finished):
            where = "in the state" if source == "state" else "in the account"
            wait = "" if finished else " and wait for it"
            return f"same definition trained as {task_name} ({where}): adopt it{wait} (free)"
        case r.RunMoved(owner, own, images, source_folder, folder, stem):
            some, s = plural(images, "image"), "s" if images == 1 else ""
            if own:
                return f"output folder changed: its {some} move{s} from {source_folder} to {folder} (free)"
            if source_folder == folder:
                return f"moved from {owner}: its {some} stay{s} in {folder}, named after {stem} (free)"
            return f"moved from {owner}: its {some} move{s} from {source_folder} to {folder} (free)"
        case r.RunCopied(source, owner, images, where):
            return _copied(source, owner, plural(images, "image"), where)
        case r.CopiedFromThisPlan(owner):
            return f"same request as {owner} in this plan: copy its images once it is done (free)"
        case _:
            assert_never(reason)


def _uploading(reason: r.Uploading) -> str:
    match reason:
        case r.UploadsNeeded(new, already, changed):
            return _changed(changed) + f"{plural(new, 'new image')} to upload ({already} already uploaded)"
        case r.AllUploaded(images, changed):
            return _changed(changed) + f"all {images} images already uploaded"
        case r.NothingToUpload(images, changed):
            return _changed(changed) + f"{images} images, nothing to upload (no training needs them)"
        case _:
            assert_never(reason)


def _forgetting(reason: r.Forgetting) -> str:
    match reason:
        case r.ForgetModel(task_name, _, in_flight=True):
            return f"{FORGET} (its training {task_name} keeps running in the account)"
        case r.ForgetModel(_, str(model_name)):
            return f"{FORGET} (the trained model {model_name} stays in the account: Novita has no delete)"
        case r.ForgetModel():
            return f"{FORGET} (nothing was trained)"
        case r.ForgetGeneration(images, prune):
            if prune:
                return f"{FORGET}, and --prune removes its {plural(images, 'image')} and history"
            stays, them = ("stays", "it") if images == 1 else ("stay", "them")
            return f"{FORGET} (its {plural(images, 'image')} {stays} on disk; --prune removes {them})"
        case r.ForgetDataset():
            return f"{FORGET} (uploaded images stay in Novita's storage)"
        case _:
            assert_never(reason)


def note_text(note: r.Note) -> str:
    """A line under a change: what else happens, or stays."""
    match note:
        case r.CurrentModelStays(model_name) | r.OldModelStays(model_name):
            return _MODEL_STAYS[type(note)].format(model_name)
        case r.EarlierTrainingEnded(task_name, status):
            return f"(an earlier training {task_name} ended {status})"
        case r.CurrentImagesToHistory(images):
            return f"(its {plural(images, 'current image')} {'moves' if images == 1 else 'move'} to history)"
        case r.FolderImagesToHistory(images, folder):
            return f"(the {plural(images, 'image')} already in {folder} move to history)"
        case _:
            assert_never(note)


def warning_text(warning: r.PlanWarning) -> str:
    """A paragraph after the plan: what needs a person's decision, or a record that was skipped."""
    if isinstance(warning, SkippedRecord):
        return f"{warning.where}: {warning.problem}; skipped: {warning.address} is treated as if it were not there"
    address = warning.address
    return (
        f"{address}: a previous apply stopped while submitting it (killed, or Novita gave no "
        "answer), and Novita cannot list generation tasks, so nobody can tell whether it ran. It is "
        "held (on_unanswered_submit: hold), not submitted again on its own: run "
        f"`reconciler apply --replace {address}` to submit it again (if the first submit did run, "
        "that pays for it twice)."
    )


def shape_text(shape: r.Shape) -> str:
    """`2 images, txt2img 512×384`."""
    return f"{plural(shape.images, 'image')}, {shape.task_type} {shape.width}×{shape.height}"


def task_status(seen: r.TaskStatus) -> str:
    """`SUCCESS, SERVING`, `TRAINING 40%`: a training's status as the account listed it."""
    return describe_training(seen.status, seen.progress, seen.model_status)


def generation_status(status: str, progress: float | None) -> str:
    """`PROCESSING 40%`: a generation task's status without Novita's TASK_STATUS_ prefix."""
    shown = status.removeprefix("TASK_STATUS_")
    return f"{shown} {progress:.0f}%" if progress else shown


def _models(models: tuple[str, ...]) -> str:
    return ", ".join(f"LoraModel/{m}" for m in models)


def _why(error: str | None) -> str:
    return f" ({error})" if error else ""


def _changed(changed: bool) -> str:
    return "images changed; " if changed else ""

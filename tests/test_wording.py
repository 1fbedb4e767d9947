"""The plan's words: every kind of reason, note and warning worded once, exactly as a person reads it; every kind
survives a saved plan; every action has its look. Pure, no I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from reconciler.errors import PlanFileError
from reconciler.plan import reasons as r
from reconciler.plan.changes import Action, Plan, ResourceChange
from reconciler.plan.planfile import PLANFILE_VERSION, Origin, load_plan, save_plan
from reconciler.present.render import ACTIONS, plan_json, render_markdown, render_text
from reconciler.present.wording import note_text, reason_text, warning_text

SHAPE = r.Shape(images=2, task_type="txt2img", width=512, height=384)
ONE = r.Shape(images=1, task_type="img2img", width=512, height=512)
SERVING = r.TaskStatus("SUCCESS", model_status="SERVING")
T = "alice-4156e0f3"

REASONS: list[tuple[r.Reason, str]] = [
    (r.NewTraining(T, 13), f"train as {T} (13 images)"),
    (r.DefinitionChanged(T), f"definition changed: retrain as {T}"),
    (r.DatasetChanged("photos", T), f"dataset photos changed: retrain as {T}"),
    (r.RetrainRequested(T), f"--replace: train again as {T}"),
    (r.TrainingMissing(T, trained=True), f"training {T} is no longer in the account: retrain"),
    (r.TrainingMissing(T, trained=False), f"training {T} vanished from the account: retrain"),
    (r.TrainingEnded(T, "CANCELED"), f"training {T} ended CANCELED: retrain"),
    (
        r.PreviousTrainingFailed("old", "out of memory", T),
        f"the previous training old failed (out of memory): retrain as {T}",
    ),
    (r.PreviousTrainingFailed("old", None, T), f"the previous training old failed: retrain as {T}"),
    (
        r.UnansweredNotListed(T),
        f"a previous submit of {T} got no answer and the account does not list it: look it up again, then train it "
        "only if it is still missing",
    ),
    (
        r.UnansweredLookup(T),
        f"a previous submit of {T} got no answer: look it up by name and wait for it, do not resubmit",
    ),
    (r.UnansweredInFlight(T, r.TaskStatus("QUEUING")), f"training {T} in flight (QUEUING): wait, do not resubmit"),
    (r.TrainingFinished(T, SERVING), f"training {T} finished (SUCCESS, SERVING): record it"),
    (
        r.TrainingInFlight(T, r.TaskStatus("TRAINING", progress=41.6)),
        f"wait for training {T}, in flight (TRAINING 42%); nothing is changed or resubmitted",
    ),
    (r.TrainingInFlight(T, None), f"wait for training {T}, in flight; nothing is changed or resubmitted"),
    (r.FoundInAccount(T, SERVING, finished=True), f"found in the account as {T} (SUCCESS, SERVING): adopt"),
    (
        r.FoundInAccount(T, r.TaskStatus("QUEUING"), finished=False),
        f"found in the account as {T} (QUEUING): adopt and wait for it",
    ),
    (r.NewGeneration(ONE), "1 image, img2img 512×512"),
    (r.WaitsForModels(SHAPE, ("a", "b")), "2 images, txt2img 512×384; waits for LoraModel/a, LoraModel/b"),
    (r.ModelsPending(("a",), retrained=True), "depends on LoraModel/a, which is retrained"),
    (r.ModelsPending(("a",), retrained=False), "depends on LoraModel/a, which is not trained yet"),
    (r.ModelsRetrained(("a",)), "depends on LoraModel/a, which was retrained"),
    (r.GenerationChanged(SHAPE), "definition changed: 2 images, txt2img 512×384"),
    (r.RunAgainRequested(SHAPE), "--replace: run it again (2 images, txt2img 512×384)"),
    (
        r.StoppedAfterHistory(SHAPE),
        "its images moved to history, then the apply stopped: run it again (2 images, txt2img 512×384)",
    ),
    (r.ImagesMissing(1, 2, "out/p"), "1 of its 2 images are missing or changed in out/p: regenerate"),
    (
        r.GenerationInFlight("g-1", "TASK_STATUS_PROCESSING", 40.0),
        "wait for generation task g-1, in flight (PROCESSING 40%); nothing is changed or resubmitted",
    ),
    (
        r.GenerationInFlight("g-1", None, None),
        "wait for generation task g-1, in flight; nothing is changed or resubmitted",
    ),
    (r.GenerationVanished("g-1"), "generation task g-1 vanished: run it again"),
    (r.GenerationFailed("g-1", "nsfw"), "generation task g-1 failed (nsfw): run it again"),
    (r.GenerationFailed("g-1", ""), "generation task g-1 failed (no reason given): run it again"),
    (r.PreviousRunFailed("nsfw"), "the previous run failed (nsfw): run it again"),
    (r.UnansweredResubmit(), "the previous submit got no answer: submitting again (may be paid twice)"),
    (r.FoundOnDisk(2, "out/p"), "its 2 images are already in out/p (sidecar matches): adopt"),
    (
        r.FoundInOutputsRemote(2),
        "its 2 images are in the outputs remote (sidecar matches): adopt and fetch them (free)",
    ),
    (r.UploadsNeeded(1, 3, changed=True), "images changed; 1 new image to upload (3 already uploaded)"),
    (r.UploadsNeeded(2, 0, changed=False), "2 new images to upload (0 already uploaded)"),
    (r.AllUploaded(3, changed=False), "all 3 images already uploaded"),
    (r.NothingToUpload(3, changed=False), "3 images, nothing to upload (no training needs them)"),
    (
        r.ForgetModel(T, None, in_flight=True),
        f"no longer in the manifests: forget (its training {T} keeps running in the account)",
    ),
    (
        r.ForgetModel(T, "m.safetensors", in_flight=False),
        "no longer in the manifests: forget (the trained model m.safetensors stays in the account: "
        "Novita has no delete)",
    ),
    (r.ForgetModel(T, None, in_flight=False), "no longer in the manifests: forget (nothing was trained)"),
    (
        r.ForgetGeneration(1, prune=False),
        "no longer in the manifests: forget (its 1 image stays on disk; --prune removes it)",
    ),
    (
        r.ForgetGeneration(2, prune=True),
        "no longer in the manifests: forget, and --prune removes its 2 images and history",
    ),
    (r.ForgetDataset(), "no longer in the manifests: forget (uploaded images stay in Novita's storage)"),
]
NOTES: list[tuple[r.Note, str]] = [
    (r.CurrentModelStays("m.safetensors"), "(the current model m.safetensors stays in the account)"),
    (r.OldModelStays("m.safetensors"), "(the old model m.safetensors stays in the account: Novita has no delete)"),
    (r.EarlierTrainingEnded(T, "FAILED"), f"(an earlier training {T} ended FAILED)"),
    (r.CurrentImagesToHistory(1), "(its 1 current image moves to history)"),
    (r.FolderImagesToHistory(2, "out/p"), "(the 2 images already in out/p move to history)"),
]
HELD = r.HeldUnanswered("Generation/p")


@pytest.mark.parametrize(("reason", "text"), REASONS, ids=[f"{r.kind}-{i}" for i, (r, _) in enumerate(REASONS)])
def test_every_reason_kind_is_worded(reason: r.Reason, text: str) -> None:
    assert reason_text(reason) == text


@pytest.mark.parametrize(("note", "text"), NOTES, ids=[n.kind for n, _ in NOTES])
def test_every_note_kind_is_worded(note: r.Note, text: str) -> None:
    assert note_text(note) == text


def test_the_held_warning_says_how_to_submit_again() -> None:
    assert warning_text(HELD) == (
        "Generation/p: a previous apply stopped while submitting it (killed, or Novita gave no answer), and Novita "
        "cannot list generation tasks, so nobody can tell whether it ran. It is held (on_unanswered_submit: hold), "
        "not submitted again on its own: run `reconciler apply --replace Generation/p` to submit it again (if the "
        "first submit did run, that pays for it twice)."
    )


def test_the_tables_cover_every_kind_and_kinds_are_unique() -> None:
    reason_kinds = [cls.kind for cls in get_args(r.Reason)]
    note_kinds = [cls.kind for cls in get_args(r.Note)]
    assert {type(reason) for reason, _ in REASONS} == set(get_args(r.Reason))
    assert {type(note) for note, _ in NOTES} == set(get_args(r.Note))
    assert len(set(reason_kinds + note_kinds + [HELD.kind])) == len(reason_kinds) + len(note_kinds) + 1


def test_paid_means_a_training_or_a_generation_is_submitted() -> None:
    paid = {reason.kind for reason, _ in REASONS if reason.paid}
    free = {reason.kind for reason, _ in REASONS if not reason.paid}
    assert "new_training" in paid and "unanswered_resubmit" in paid and "images_missing" in paid
    assert {"training_in_flight", "found_in_account", "found_on_disk", "uploads_needed", "forget_model"} <= free
    assert [reason.kind for reason, _ in REASONS if reason.may_pay_twice] == ["unanswered_resubmit"]


def test_every_action_has_a_symbol_colour_and_legend() -> None:
    assert set(ACTIONS) == set(get_args(Action))
    assert len({look.symbol for look in ACTIONS.values()}) == len(ACTIONS)


def _plan_of_every_kind() -> Plan:
    notes = tuple(n for n, _ in NOTES)
    changes = tuple(
        ResourceChange(f"Generation/g{i}", "create", reason, notes=notes if i == 0 else ())
        for i, (reason, _) in enumerate(REASONS)
    )
    return Plan(changes, state_serial=3, state_lineage="l", desired_digest="d", warnings=(HELD,))


def test_a_saved_plan_keeps_every_reason_note_and_warning(tmp_path: Path) -> None:
    plan = _plan_of_every_kind()
    path = tmp_path / "p.plan"
    save_plan(plan, path)
    saved = json.loads(path.read_text())
    assert saved["planfile_version"] == PLANFILE_VERSION
    assert saved["plan"]["changes"][0]["reason"] == {"kind": "new_training", "task_name": T, "images": 13}
    again = load_plan(path).plan
    assert again == plan
    assert render_text(again) == render_text(plan) and render_markdown(again) == render_markdown(plan)


def test_the_json_plan_carries_the_reason_kind_fields_and_cost() -> None:
    plan = _plan_of_every_kind()
    data = plan_json(plan)
    first, waits = data["resource_changes"][0], data["resource_changes"][18]
    assert (first["reason"], first["reason_kind"], first["reason_fields"], first["paid"]) == (
        f"train as {T} (13 images)",
        "new_training",
        {"task_name": T, "images": 13},
        True,
    )
    assert (waits["reason_kind"], waits["reason_fields"]) == (
        "waits_for_models",
        {"shape": {"images": 2, "task_type": "txt2img", "width": 512, "height": 384}, "models": ("a", "b")},
    )
    assert first["notes"] == [text for _, text in NOTES]
    assert data["warnings"] == [warning_text(HELD)]


@pytest.mark.parametrize("version", [1, 2])
def test_a_plan_file_from_an_earlier_reconciler_is_refused_with_the_command_to_make_it_again(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "old.plan"
    origin: Any = Origin(True, "simulator", "state/sim.json", "default", targets=("LoraModel/a",)).__dict__
    data = {"planfile_version": version, "origin": origin if version == 2 else None, "plan": {}, "readable": {}}
    path.write_text(json.dumps(data))
    with pytest.raises(PlanFileError) as info:
        load_plan(path)
    again = (
        f"reconciler plan --sim --target LoraModel/a --out {path}" if version == 2 else f"reconciler plan --out {path}"
    )
    assert str(info.value) == (
        f"{path} was saved by an earlier reconciler (plan file version {version}; this one reads version "
        f"{PLANFILE_VERSION}). Plan again with: {again}"
    )


def test_a_reason_of_the_wrong_family_is_a_damaged_plan_file(tmp_path: Path) -> None:
    path = tmp_path / "p.plan"
    save_plan(_plan_of_every_kind(), path)
    data = json.loads(path.read_text())
    data["plan"]["changes"][0]["reason"] = {"kind": "old_model_stays", "model_name": "m"}
    path.write_text(json.dumps(data))
    with pytest.raises(PlanFileError) as info:
        load_plan(path)
    assert str(info.value) == f"{path}: the plan file is damaged (old_model_stays is not expected here)"

"""Pure: why the planner decided each change, as values. Only `reconciler.present.wording` turns them into English.

One frozen dataclass per kind of decision, with the facts a renderer words and a program reads: `kind` (the
name in `--json` and in saved plans) and `paid` (whether carrying the change out costs money on Novita).
`Reason` is the union a ResourceChange carries; `Note` the extra lines under a change; `PlanWarning` what
needs a person. To add a kind: one dataclass here, added to its union; `wording.py` then fails type-checking
until it words it, and saved plans read and write it with no further code.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, Union, get_args, get_origin, get_type_hints

from reconciler.observe.facts import AccountTraining


@dataclass(frozen=True)
class TaskStatus:
    """A training as the account listed it when planned: Novita's status, progress and model status."""

    status: str
    progress: float | None = None
    model_status: str | None = None

    @classmethod
    def of(cls, task: AccountTraining) -> TaskStatus:
        return cls(task.status, task.progress, task.model_status)


@dataclass(frozen=True)
class Shape:
    """What a generation makes: how many images, of which task type and size."""

    images: int
    task_type: str
    width: int
    height: int


@dataclass(frozen=True)
class _Value:
    kind: ClassVar[str]


@dataclass(frozen=True)
class _Reason(_Value):
    paid: ClassVar[bool]  # carrying the change out costs money on Novita (a training or a generation)
    may_pay_twice: ClassVar[bool] = False  # ...and may pay again for work that might already have been done


# --- LoraModel -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTraining(_Reason):
    """Not in the state and not in the account: train it."""

    kind = "new_training"
    paid = True
    task_name: str
    images: int


@dataclass(frozen=True)
class DefinitionChanged(_Reason):
    """The model's settings changed since it was trained: train the new definition under its new task name."""

    kind = "definition_changed"
    paid = True
    task_name: str


@dataclass(frozen=True)
class DatasetChanged(_Reason):
    """Only the model's images changed: train again under the new task name."""

    kind = "dataset_changed"
    paid = True
    dataset: str
    task_name: str


@dataclass(frozen=True)
class RetrainRequested(_Reason):
    """`--replace` named this model."""

    kind = "retrain_requested"
    paid = True
    task_name: str


@dataclass(frozen=True)
class TrainingMissing(_Reason):
    """The training the state records is not in the account (`trained`: it had finished; else it was in flight)."""

    kind = "training_missing"
    paid = True
    task_name: str | None
    trained: bool


@dataclass(frozen=True)
class TrainingEnded(_Reason):
    """The account says the training ended without a model (FAILED, CANCELED): train again."""

    kind = "training_ended"
    paid = True
    task_name: str
    status: str


@dataclass(frozen=True)
class PreviousTrainingFailed(_Reason):
    """The state records a failed training of this same definition: train again."""

    kind = "previous_training_failed"
    paid = True
    failed_task: str | None
    error: str | None
    task_name: str


@dataclass(frozen=True)
class UnansweredNotListed(_Reason):
    """A create got no answer and the account does not list the task: look it up again, train only if missing."""

    kind = "unanswered_not_listed"
    paid = True
    task_name: str


@dataclass(frozen=True)
class UnansweredLookup(_Reason):
    """A create got no answer, planned offline: apply looks the name up and waits, never resubmits."""

    kind = "unanswered_lookup"
    paid = False
    task_name: str


@dataclass(frozen=True)
class UnansweredInFlight(_Reason):
    """A create got no answer, but it did make the task, which is still running: wait for it."""

    kind = "unanswered_in_flight"
    paid = False
    task_name: str
    seen: TaskStatus


@dataclass(frozen=True)
class TrainingFinished(_Reason):
    """The training finished while nobody was watching: record its model."""

    kind = "training_finished"
    paid = False
    task_name: str
    seen: TaskStatus


@dataclass(frozen=True)
class TrainingInFlight(_Reason):
    """The training is running: wait for it (`seen` is None when planned offline)."""

    kind = "training_in_flight"
    paid = False
    task_name: str
    seen: TaskStatus | None


@dataclass(frozen=True)
class FoundInAccount(_Reason):
    """A training of this definition is in the account but not in the state: adopt it (and wait, unless finished)."""

    kind = "found_in_account"
    paid = False
    task_name: str
    seen: TaskStatus
    finished: bool


# --- Generation ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewGeneration(_Reason):
    """Not in the state and not found in its output folder or the outputs remote: generate it."""

    kind = "new_generation"
    paid = True
    shape: Shape


@dataclass(frozen=True)
class WaitsForModels(_Reason):
    """A new generation whose LoRAs are not trained yet: it runs once `models` are."""

    kind = "waits_for_models"
    paid = True
    shape: Shape
    models: tuple[str, ...]


@dataclass(frozen=True)
class ModelsPending(_Reason):
    """A generation whose LoRAs will change: `retrained` when this plan trains them, else they are not trained yet."""

    kind = "models_pending"
    paid = True
    models: tuple[str, ...]
    retrained: bool


@dataclass(frozen=True)
class ModelsRetrained(_Reason):
    """A generation whose LoRAs were trained again since it ran."""

    kind = "models_retrained"
    paid = True
    models: tuple[str, ...]


@dataclass(frozen=True)
class GenerationChanged(_Reason):
    """The generation's request changed since it ran."""

    kind = "generation_changed"
    paid = True
    shape: Shape


@dataclass(frozen=True)
class RunAgainRequested(_Reason):
    """`--replace` named this generation."""

    kind = "run_again_requested"
    paid = True
    shape: Shape


@dataclass(frozen=True)
class StoppedAfterHistory(_Reason):
    """An apply moved its images to history, then stopped before generating new ones."""

    kind = "stopped_after_history"
    paid = True
    shape: Shape


@dataclass(frozen=True)
class ImagesMissing(_Reason):
    """Some of its images are gone or changed in the output folder (and not in an outputs remote)."""

    kind = "images_missing"
    paid = True
    missing: int
    total: int
    folder: str


@dataclass(frozen=True)
class GenerationInFlight(_Reason):
    """The generation task is running: wait for it (`status` None: not seen, e.g. planned offline)."""

    kind = "generation_in_flight"
    paid = False
    task_id: str
    status: str | None
    progress: float | None


@dataclass(frozen=True)
class GenerationVanished(_Reason):
    """Novita no longer knows the task the state waits for."""

    kind = "generation_vanished"
    paid = True
    task_id: str


@dataclass(frozen=True)
class GenerationFailed(_Reason):
    """The task the state waits for failed on Novita (`error`: Novita's reason, "" when none was given)."""

    kind = "generation_failed"
    paid = True
    task_id: str
    error: str


@dataclass(frozen=True)
class PreviousRunFailed(_Reason):
    """The state records a failed run of this same generation."""

    kind = "previous_run_failed"
    paid = True
    error: str | None


@dataclass(frozen=True)
class UnansweredResubmit(_Reason):
    """A submit got no answer, Novita cannot list generations, and the policy says resubmit."""

    kind = "unanswered_resubmit"
    paid = True
    may_pay_twice = True


@dataclass(frozen=True)
class FoundOnDisk(_Reason):
    """Its images are already in the output folder with a matching sidecar: adopt them."""

    kind = "found_on_disk"
    paid = False
    images: int
    folder: str


@dataclass(frozen=True)
class TrainedUnderAnotherName(_Reason):
    """A training of this identity is held under another task name (a renamed LoraModel); `source`: state|account."""

    kind = "trained_under_another_name"
    paid = False
    task_name: str
    source: str
    finished: bool


@dataclass(frozen=True)
class RunMoved(_Reason):
    """Its own paid run is recorded elsewhere (`owner`'s record; itself when only `output:` changed): it moves in."""

    kind = "run_moved"
    paid = False
    owner: str
    own: bool
    images: int
    source_folder: str
    folder: str
    stem: str


@dataclass(frozen=True)
class RunCopied(_Reason):
    """The request was paid for before; `source` (state|history|forgotten|folder|remote) holds it: copied in."""

    kind = "run_copied"
    paid = False
    source: str
    owner: str
    images: int
    where: str


@dataclass(frozen=True)
class CopiedFromThisPlan(_Reason):
    """A generation of this very plan runs (or moves in) the same request: copied from it once done (free)."""

    kind = "copied_from_this_plan"
    paid = False
    owner: str


@dataclass(frozen=True)
class FoundInOutputsRemote(_Reason):
    """Its images are in the outputs remote with a matching sidecar: adopt them and fetch them (free)."""

    kind = "found_in_outputs_remote"
    paid = False
    images: int


# --- Dataset -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadsNeeded(_Reason):
    """Its trainings will upload `new` images (`already` are in Novita's storage); `changed`: the images changed."""

    kind = "uploads_needed"
    paid = False
    new: int
    already: int
    changed: bool


@dataclass(frozen=True)
class AllUploaded(_Reason):
    """Its trainings need only images already uploaded."""

    kind = "all_uploaded"
    paid = False
    images: int
    changed: bool


@dataclass(frozen=True)
class NothingToUpload(_Reason):
    """No training in this plan needs its images."""

    kind = "nothing_to_upload"
    paid = False
    images: int
    changed: bool


# --- forget --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgetModel(_Reason):
    """No longer in the manifests; what stays in the account (a running training, a trained model, or nothing)."""

    kind = "forget_model"
    paid = False
    task_name: str | None
    model_name: str | None
    in_flight: bool


@dataclass(frozen=True)
class ForgetGeneration(_Reason):
    """No longer in the manifests; its images stay on disk unless `prune`."""

    kind = "forget_generation"
    paid = False
    images: int
    prune: bool


@dataclass(frozen=True)
class ForgetDataset(_Reason):
    """No longer in the manifests; uploaded images stay in Novita's storage."""

    kind = "forget_dataset"
    paid = False


Reason: TypeAlias = (
    NewTraining
    | DefinitionChanged
    | DatasetChanged
    | RetrainRequested
    | TrainingMissing
    | TrainingEnded
    | PreviousTrainingFailed
    | UnansweredNotListed
    | UnansweredLookup
    | UnansweredInFlight
    | TrainingFinished
    | TrainingInFlight
    | FoundInAccount
    | NewGeneration
    | WaitsForModels
    | ModelsPending
    | ModelsRetrained
    | GenerationChanged
    | RunAgainRequested
    | StoppedAfterHistory
    | ImagesMissing
    | GenerationInFlight
    | GenerationVanished
    | GenerationFailed
    | PreviousRunFailed
    | UnansweredResubmit
    | FoundOnDisk
    | FoundInOutputsRemote
    | TrainedUnderAnotherName
    | RunMoved
    | RunCopied
    | CopiedFromThisPlan
    | UploadsNeeded
    | AllUploaded
    | NothingToUpload
    | ForgetModel
    | ForgetGeneration
    | ForgetDataset
)


# --- notes: lines under a change ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrentModelStays(_Value):
    """`--replace` of a trained model: the current one stays in the account."""

    kind = "current_model_stays"
    model_name: str


@dataclass(frozen=True)
class OldModelStays(_Value):
    """A changed model: the old one stays in the account (Novita has no delete)."""

    kind = "old_model_stays"
    model_name: str


@dataclass(frozen=True)
class EarlierTrainingEnded(_Value):
    """The account holds an earlier training of this name that ended without a model."""

    kind = "earlier_training_ended"
    task_name: str
    status: str


@dataclass(frozen=True)
class CurrentImagesToHistory(_Value):
    """Generating again moves its current images to history."""

    kind = "current_images_to_history"
    images: int


@dataclass(frozen=True)
class FolderImagesToHistory(_Value):
    """Images already in the output folder, not recorded in the state, move to history."""

    kind = "folder_images_to_history"
    images: int
    folder: str


Note: TypeAlias = (
    CurrentModelStays | OldModelStays | EarlierTrainingEnded | CurrentImagesToHistory | FolderImagesToHistory
)


# --- warnings: what needs a person ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldUnanswered(_Value):
    """A generation whose submit got no answer, held by `on_unanswered_submit: hold`: nothing is planned for it."""

    kind = "held_unanswered"
    address: str


PlanWarning: TypeAlias = HeldUnanswered


# --- records: saved plans and --json -------------------------------------------------------------------------

_KINDS: dict[str, type[_Value]] = {cls.kind: cls for union in (Reason, Note) for cls in get_args(union)} | {
    HeldUnanswered.kind: HeldUnanswered
}


def fields_of(value: _Value) -> dict[str, Any]:
    """The value's own fields, as JSON-ready data."""
    return dataclasses.asdict(value)


def record(value: _Value) -> dict[str, Any]:
    """`{"kind": ..., **fields}`: how a saved plan stores a reason, note or warning."""
    return {"kind": value.kind, **fields_of(value)}


def from_record(raw: dict[str, Any], of: Any) -> Any:
    """The value `record` wrote, one of the union `of`; KeyError/TypeError/ValueError when `raw` is not one."""
    fields = dict(raw)
    cls = _KINDS[fields.pop("kind")]
    if cls not in (get_args(of) or (of,)):
        raise ValueError(f"{cls.kind} is not expected here")
    return _build(cls, fields)


def _build(cls: type, raw: dict[str, Any]) -> Any:
    if not isinstance(raw, dict):
        raise TypeError(f"{cls.__name__} expects an object, not {raw!r}")
    hints = get_type_hints(cls)
    return cls(**{f.name: _coerce(hints[f.name], raw[f.name]) for f in dataclasses.fields(cls)})


def _coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value)  # type: ignore[arg-type]
    return value

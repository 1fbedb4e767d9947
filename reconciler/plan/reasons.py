"""Pure: why the planner decided each change, as values. Only `reconciler.present.wording` turns them into English.

One frozen dataclass per kind of decision, with the facts a renderer words and a program reads: `kind` (the
name in `--json` and in saved plans) and `paid` (whether carrying the change out costs money on Novita: a
reason is a `_Paid` or a `_Free` one).
`Reason` is the union a ResourceChange carries; `Note` the extra lines under a change; `PlanWarning` what
needs a person. To add a kind: one dataclass here, added to its union; `wording.py` then fails type-checking
until it words it, and saved plans read and write it with no further code.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, Union, get_args, get_origin, get_type_hints

from reconciler.observe.facts import AccountTraining, SkippedRecord


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


@dataclass(frozen=True)
class _Paid(_Reason):
    """A reason for submitting a training or a generation: Novita charges for it."""

    paid = True


@dataclass(frozen=True)
class _Free(_Reason):
    """A reason for a change that submits nothing: waiting, recording, adopting, uploading, forgetting."""

    paid = False


# --- LoraModel -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTraining(_Paid):
    """Not in the state and not in the account: train it."""

    kind = "new_training"
    task_name: str
    images: int


@dataclass(frozen=True)
class DefinitionChanged(_Paid):
    """The model's settings changed since it was trained: train the new definition under its new task name."""

    kind = "definition_changed"
    task_name: str


@dataclass(frozen=True)
class DatasetChanged(_Paid):
    """Only the model's images changed: train again under the new task name."""

    kind = "dataset_changed"
    dataset: str
    task_name: str


@dataclass(frozen=True)
class RetrainRequested(_Paid):
    """`--replace` named this model."""

    kind = "retrain_requested"
    task_name: str


@dataclass(frozen=True)
class TrainingMissing(_Paid):
    """The training the state records is not in the account (`trained`: it had finished; else it was in flight)."""

    kind = "training_missing"
    task_name: str | None
    trained: bool


@dataclass(frozen=True)
class TrainingEnded(_Paid):
    """The account says the training ended without a model (FAILED, CANCELED): train again."""

    kind = "training_ended"
    task_name: str
    status: str


@dataclass(frozen=True)
class PreviousTrainingFailed(_Paid):
    """The state records a failed training of this same definition: train again."""

    kind = "previous_training_failed"
    failed_task: str | None
    error: str | None
    task_name: str


@dataclass(frozen=True)
class UnansweredNotListed(_Paid):
    """A create got no answer and the account does not list the task: look it up again, train only if missing."""

    kind = "unanswered_not_listed"
    task_name: str


@dataclass(frozen=True)
class UnansweredLookup(_Free):
    """A create got no answer, planned offline: apply looks the name up and waits, never resubmits."""

    kind = "unanswered_lookup"
    task_name: str


@dataclass(frozen=True)
class UnansweredInFlight(_Free):
    """A create got no answer, but it did make the task, which is still running: wait for it."""

    kind = "unanswered_in_flight"
    task_name: str
    seen: TaskStatus


@dataclass(frozen=True)
class TrainingFinished(_Free):
    """The training finished while nobody was watching: record its model."""

    kind = "training_finished"
    task_name: str
    seen: TaskStatus


@dataclass(frozen=True)
class TrainingInFlight(_Free):
    """The training is running: wait for it (`seen` is None when planned offline)."""

    kind = "training_in_flight"
    task_name: str
    seen: TaskStatus | None


@dataclass(frozen=True)
class FoundInAccount(_Free):
    """A training of this definition is in the account but not in the state: adopt it (and wait, unless finished)."""

    kind = "found_in_account"
    task_name: str
    seen: TaskStatus
    finished: bool


# --- Generation ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewGeneration(_Paid):
    """Not in the state and not found in its output folder or the outputs remote: generate it."""

    kind = "new_generation"
    shape: Shape


@dataclass(frozen=True)
class WaitsForModels(_Paid):
    """A new generation whose LoRAs are not trained yet: it runs once `models` are."""

    kind = "waits_for_models"
    shape: Shape
    models: tuple[str, ...]


@dataclass(frozen=True)
class ModelsPending(_Paid):
    """A generation whose LoRAs will change: `retrained` when this plan trains them, else they are not trained yet."""

    kind = "models_pending"
    models: tuple[str, ...]
    retrained: bool


@dataclass(frozen=True)
class ModelsRetrained(_Paid):
    """A generation whose LoRAs were trained again since it ran."""

    kind = "models_retrained"
    models: tuple[str, ...]


@dataclass(frozen=True)
class GenerationChanged(_Paid):
    """The generation's request changed since it ran."""

    kind = "generation_changed"
    shape: Shape


@dataclass(frozen=True)
class RunAgainRequested(_Paid):
    """`--replace` named this generation."""

    kind = "run_again_requested"
    shape: Shape


@dataclass(frozen=True)
class StoppedAfterHistory(_Paid):
    """An apply moved its images to history, then stopped before generating new ones."""

    kind = "stopped_after_history"
    shape: Shape


@dataclass(frozen=True)
class ImagesMissing(_Paid):
    """Some of its images are gone or changed in the output folder (and not in an outputs remote)."""

    kind = "images_missing"
    missing: int
    total: int
    folder: str


@dataclass(frozen=True)
class GenerationInFlight(_Free):
    """The generation task is running: wait for it (`status` None: not seen, e.g. planned offline)."""

    kind = "generation_in_flight"
    task_id: str
    status: str | None
    progress: float | None


@dataclass(frozen=True)
class GenerationVanished(_Paid):
    """Novita no longer knows the task the state waits for."""

    kind = "generation_vanished"
    task_id: str


@dataclass(frozen=True)
class GenerationFailed(_Paid):
    """The task the state waits for failed on Novita (`error`: Novita's reason, "" when none was given)."""

    kind = "generation_failed"
    task_id: str
    error: str


@dataclass(frozen=True)
class PreviousRunFailed(_Paid):
    """The state records a failed run of this same generation."""

    kind = "previous_run_failed"
    error: str | None


@dataclass(frozen=True)
class UnansweredResubmit(_Paid):
    """A submit got no answer, Novita cannot list generations, and the policy says resubmit."""

    kind = "unanswered_resubmit"
    may_pay_twice = True


@dataclass(frozen=True)
class FoundOnDisk(_Free):
    """Its images are already in the output folder with a matching sidecar: adopt them."""

    kind = "found_on_disk"
    images: int
    folder: str


@dataclass(frozen=True)
class FoundInOutputsRemote(_Free):
    """Its images are in the outputs remote with a matching sidecar: adopt them and fetch them (free)."""

    kind = "found_in_outputs_remote"
    images: int


# --- Dataset -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadsNeeded(_Free):
    """Its trainings will upload `new` images (`already` are in Novita's storage); `changed`: the images changed."""

    kind = "uploads_needed"
    new: int
    already: int
    changed: bool


@dataclass(frozen=True)
class AllUploaded(_Free):
    """Its trainings need only images already uploaded."""

    kind = "all_uploaded"
    images: int
    changed: bool


@dataclass(frozen=True)
class NothingToUpload(_Free):
    """No training in this plan needs its images."""

    kind = "nothing_to_upload"
    images: int
    changed: bool


# --- forget --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForgetModel(_Free):
    """No longer in the manifests; what stays in the account (a running training, a trained model, or nothing)."""

    kind = "forget_model"
    task_name: str | None
    model_name: str | None
    in_flight: bool


@dataclass(frozen=True)
class ForgetGeneration(_Free):
    """No longer in the manifests; its images stay on disk unless `prune`."""

    kind = "forget_generation"
    images: int
    prune: bool


@dataclass(frozen=True)
class ForgetDataset(_Free):
    """No longer in the manifests; uploaded images stay in Novita's storage."""

    kind = "forget_dataset"


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


PlanWarning: TypeAlias = HeldUnanswered | SkippedRecord  # SkippedRecord: a record read that failed a check


# --- records: saved plans and --json -------------------------------------------------------------------------

_KINDS: dict[str, type[_Value]] = {cls.kind: cls for union in (Reason, Note) for cls in get_args(union)} | {
    cls.kind: cls for cls in get_args(PlanWarning)
}


def fields_of(value: _Value | SkippedRecord) -> dict[str, Any]:
    """The value's own fields, as JSON-ready data."""
    return dataclasses.asdict(value)


def record(value: _Value | SkippedRecord) -> dict[str, Any]:
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

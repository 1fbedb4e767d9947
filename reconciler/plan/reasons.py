"""Pure: why the planner decided each change, as values. Only `reconciler.present.wording` turns them into English.

One frozen dataclass per kind of decision, with the facts a renderer words and a program reads: `kind` (the
name in `--json` and in saved plans, given on the class line) and `paid` (whether carrying the change out costs
money on Novita: a reason is a `_Paid` or a `_Free` one). Kinds that share fields share a base class holding
them (its fields come first, in the order the records have always listed them).
`Reason` is the union a ResourceChange carries, made of one union per family (`PaidTraining`,
`PaidGeneration`, `Waiting`, `Reusing`, `Uploading`, `Forgetting`); `Note` the extra lines under a change;
`PlanWarning` what needs a person. To add a kind: one class here, added to its family's union; `wording.py`
then fails type-checking until it words it, and saved plans read and write it with no further code.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias, Union, get_args, get_origin, get_type_hints

from reconciler.observe.facts import AccountTraining, SkippedRecord
from reconciler.values import Value


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


class _Value(Value):
    """A reason, note or warning: each subclass is a frozen dataclass, named by the `kind` its class line gives."""

    kind: ClassVar[str]

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        if kind:
            cls.kind = kind
        super().__init_subclass__(**kwargs)


class _Reason(_Value):
    paid: ClassVar[bool]  # carrying the change out costs money on Novita (a training or a generation)
    may_pay_twice: ClassVar[bool] = False  # ...and may pay again for work that might already have been done


class _Paid(_Reason):
    """A reason for submitting a training or a generation: Novita charges for it."""

    paid = True


class _Free(_Reason):
    """A reason for a change that submits nothing: waiting, recording, adopting, uploading, forgetting."""

    paid = False


# --- paid: a LoraModel is trained ----------------------------------------------------------------------------


class _TrainsAs(_Paid):
    """Train under `task_name`."""

    task_name: str


class NewTraining(_TrainsAs, kind="new_training"):
    """Not in the state and not in the account: train it."""

    images: int


class DefinitionChanged(_TrainsAs, kind="definition_changed"):
    """The model's settings changed since it was trained: train the new definition under its new task name."""


class DatasetChanged(_Paid, kind="dataset_changed"):
    """Only the model's images changed: train again under the new task name."""

    dataset: str
    task_name: str


class RetrainRequested(_TrainsAs, kind="retrain_requested"):
    """`--replace` named this model."""


class TrainingMissing(_Paid, kind="training_missing"):
    """The training the state records is not in the account (`trained`: it had finished; else it was in flight)."""

    task_name: str | None
    trained: bool


class TrainingEnded(_TrainsAs, kind="training_ended"):
    """The account says the training ended without a model (FAILED, CANCELED): train again."""

    status: str


class PreviousTrainingFailed(_Paid, kind="previous_training_failed"):
    """The state records a failed training of this same definition: train again."""

    failed_task: str | None
    error: str | None
    task_name: str


class UnansweredNotListed(_TrainsAs, kind="unanswered_not_listed"):
    """A create got no answer and the account does not list the task: look it up again, train only if missing."""


PaidTraining: TypeAlias = (
    NewTraining
    | DefinitionChanged
    | DatasetChanged
    | RetrainRequested
    | TrainingMissing
    | TrainingEnded
    | PreviousTrainingFailed
    | UnansweredNotListed
)


# --- paid: a Generation runs ---------------------------------------------------------------------------------


class _Generates(_Paid):
    """Generate `shape`."""

    shape: Shape


class NewGeneration(_Generates, kind="new_generation"):
    """Not in the state and not found in its output folder or the outputs remote: generate it."""


class WaitsForModels(_Generates, kind="waits_for_models"):
    """A new generation whose LoRAs are not trained yet: it runs once `models` are."""

    models: tuple[str, ...]


class _DependsOn(_Paid):
    """A generation whose LoRAs (`models`) are trained again."""

    models: tuple[str, ...]


class ModelsPending(_DependsOn, kind="models_pending"):
    """A generation whose LoRAs will change: `retrained` when this plan trains them, else they are not trained yet."""

    retrained: bool


class ModelsRetrained(_DependsOn, kind="models_retrained"):
    """A generation whose LoRAs were trained again since it ran."""


class GenerationChanged(_Generates, kind="generation_changed"):
    """The generation's request changed since it ran."""


class RunAgainRequested(_Generates, kind="run_again_requested"):
    """`--replace` named this generation."""


class StoppedAfterHistory(_Generates, kind="stopped_after_history"):
    """An apply moved its images to history, then stopped before generating new ones."""


class ImagesMissing(_Paid, kind="images_missing"):
    """Some of its images are gone or changed in the output folder (and not in an outputs remote)."""

    missing: int
    total: int
    folder: str


class _TaskLost(_Paid):
    """The generation task `task_id` the state waits for will not deliver: run it again."""

    task_id: str


class GenerationVanished(_TaskLost, kind="generation_vanished"):
    """Novita no longer knows the task the state waits for."""


class GenerationFailed(_TaskLost, kind="generation_failed"):
    """The task the state waits for failed on Novita (`error`: Novita's reason, "" when none was given)."""

    error: str


class PreviousRunFailed(_Paid, kind="previous_run_failed"):
    """The state records a failed run of this same generation."""

    error: str | None


class UnansweredResubmit(_Paid, kind="unanswered_resubmit"):
    """A submit got no answer, Novita cannot list generations, and the policy says resubmit."""

    may_pay_twice = True


PaidGeneration: TypeAlias = (
    NewGeneration
    | WaitsForModels
    | ModelsPending
    | ModelsRetrained
    | GenerationChanged
    | RunAgainRequested
    | StoppedAfterHistory
    | ImagesMissing
    | GenerationVanished
    | GenerationFailed
    | PreviousRunFailed
    | UnansweredResubmit
)


# --- free: waiting for what runs on Novita, recording what finished ------------------------------------------


class _Watches(_Free):
    """The training `task_name` is (or may be) in the account."""

    task_name: str


class UnansweredLookup(_Watches, kind="unanswered_lookup"):
    """A create got no answer, planned offline: apply looks the name up and waits, never resubmits."""


class _Seen(_Watches):
    """...and the account listed it (`seen`)."""

    seen: TaskStatus


class UnansweredInFlight(_Seen, kind="unanswered_in_flight"):
    """A create got no answer, but it did make the task, which is still running: wait for it."""


class TrainingFinished(_Seen, kind="training_finished"):
    """The training finished while nobody was watching: record its model."""


class TrainingInFlight(_Watches, kind="training_in_flight"):
    """The training is running: wait for it (`seen` is None when planned offline)."""

    seen: TaskStatus | None


class FoundInAccount(_Seen, kind="found_in_account"):
    """A training of this definition is in the account but not in the state: adopt it (and wait, unless finished)."""

    finished: bool


class GenerationInFlight(_Free, kind="generation_in_flight"):
    """The generation task is running: wait for it (`status` None: not seen, e.g. planned offline)."""

    task_id: str
    status: str | None
    progress: float | None


Waiting: TypeAlias = (
    UnansweredLookup | UnansweredInFlight | TrainingFinished | TrainingInFlight | FoundInAccount | GenerationInFlight
)


# --- free: what is already paid for is adopted, moved or copied ---------------------------------------------


class _Found(_Free):
    """Its `images` are already made, with a matching sidecar."""

    images: int


class FoundOnDisk(_Found, kind="found_on_disk"):
    """Its images are already in the output folder with a matching sidecar: adopt them."""

    folder: str


class FoundInOutputsRemote(_Found, kind="found_in_outputs_remote"):
    """Its images are in the outputs remote with a matching sidecar: adopt them and fetch them (free)."""


class TrainedUnderAnotherName(_Watches, kind="trained_under_another_name"):
    """A training of this identity is held under another task name (a renamed LoraModel); `source`: state|account."""

    source: str
    finished: bool


class RunMoved(_Free, kind="run_moved"):
    """Its own paid run is recorded elsewhere (`owner`'s record; itself when only `output:` changed): it moves in."""

    owner: str
    own: bool
    images: int
    source_folder: str
    folder: str
    stem: str


class RunCopied(_Free, kind="run_copied"):
    """The request was paid for before; `source` (state|history|forgotten|folder|remote) holds it: copied in."""

    source: str
    owner: str
    images: int
    where: str


class CopiedFromThisPlan(_Free, kind="copied_from_this_plan"):
    """A generation of this very plan runs (or moves in) the same request: copied from it once done (free)."""

    owner: str


Reusing: TypeAlias = (
    FoundOnDisk | FoundInOutputsRemote | TrainedUnderAnotherName | RunMoved | RunCopied | CopiedFromThisPlan
)


# --- free: a Dataset's uploads --------------------------------------------------------------------------------


class UploadsNeeded(_Free, kind="uploads_needed"):
    """Its trainings will upload `new` images (`already` are in Novita's storage); `changed`: the images changed."""

    new: int
    already: int
    changed: bool


class _NoUpload(_Free):
    """Its trainings upload none of its `images` (`changed`: the images changed)."""

    images: int
    changed: bool


class AllUploaded(_NoUpload, kind="all_uploaded"):
    """Its trainings need only images already uploaded."""


class NothingToUpload(_NoUpload, kind="nothing_to_upload"):
    """No training in this plan needs its images."""


Uploading: TypeAlias = UploadsNeeded | AllUploaded | NothingToUpload


# --- free: forget --------------------------------------------------------------------------------------------


class ForgetModel(_Free, kind="forget_model"):
    """No longer in the manifests; what stays in the account (a running training, a trained model, or nothing)."""

    task_name: str | None
    model_name: str | None
    in_flight: bool


class ForgetGeneration(_Free, kind="forget_generation"):
    """No longer in the manifests; its images stay on disk unless `prune`."""

    images: int
    prune: bool


class ForgetDataset(_Free, kind="forget_dataset"):
    """No longer in the manifests; uploaded images stay in Novita's storage."""


Forgetting: TypeAlias = ForgetModel | ForgetGeneration | ForgetDataset

Reason: TypeAlias = PaidTraining | PaidGeneration | Waiting | Reusing | Uploading | Forgetting


# --- notes: lines under a change ------------------------------------------------------------------------------


class _ModelStays(_Value):
    """A trained model (`model_name`) stays in the account."""

    model_name: str


class CurrentModelStays(_ModelStays, kind="current_model_stays"):
    """`--replace` of a trained model: the current one stays in the account."""


class OldModelStays(_ModelStays, kind="old_model_stays"):
    """A changed model: the old one stays in the account (Novita has no delete)."""


class EarlierTrainingEnded(_Value, kind="earlier_training_ended"):
    """The account holds an earlier training of this name that ended without a model."""

    task_name: str
    status: str


class _ToHistory(_Value):
    """`images` move to history."""

    images: int


class CurrentImagesToHistory(_ToHistory, kind="current_images_to_history"):
    """Generating again moves its current images to history."""


class FolderImagesToHistory(_ToHistory, kind="folder_images_to_history"):
    """Images already in the output folder, not recorded in the state, move to history."""

    folder: str


Note: TypeAlias = (
    CurrentModelStays | OldModelStays | EarlierTrainingEnded | CurrentImagesToHistory | FolderImagesToHistory
)


# --- warnings: what needs a person ---------------------------------------------------------------------------


class HeldUnanswered(_Value, kind="held_unanswered"):
    """A generation whose submit got no answer, held by `on_unanswered_submit: hold`: nothing is planned for it."""

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

"""Typed Novita answers. Pure: no I/O.

Lenient out: unknown fields ignored, `null` -> default, int64-as-string accepted, statuses kept as given
strings (an unknown status never crashes), `models: null` -> [].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from reconciler.status import (
    generation_failed,
    generation_pending,
    generation_succeeded,
    training_failed,
    training_pending,
    training_succeeded,
)


def lenient_str(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _int(value: Any) -> Any:
    if value is None or value == "":
        return 0
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except ValueError:
            return value
    if isinstance(value, float):
        return int(value)
    return value


def _opt_float(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def _list(value: Any) -> Any:
    return [] if value is None else value


Str = Annotated[str, BeforeValidator(lenient_str)]
Int = Annotated[int, BeforeValidator(_int)]
OptFloat = Annotated[float | None, BeforeValidator(_opt_float)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TrainedModel(_Lenient):
    model_name: Str = ""
    model_status: Str = ""  # DEPLOYING | SERVING | anything else, kept as given


_Models = Annotated[list[TrainedModel], BeforeValidator(_list)]


def _serving_model_name(models: list[TrainedModel]) -> str | None:
    for model in models:
        if model.model_status.upper() == "SERVING" and model.model_name:
            return model.model_name
    return next((m.model_name for m in models if m.model_name), None)


class _TrainingState(_Lenient):
    task_id: Str
    task_status: Str = ""  # UNKNOWN | QUEUING | TRAINING | SUCCESS | CANCELED | FAILED | anything else
    models: _Models = Field(default_factory=list)

    @property
    def is_done(self) -> bool:
        """SUCCESS and a model SERVING: the LoRA is usable."""
        return training_succeeded(self.task_status, (m.model_status for m in self.models))

    @property
    def is_failed(self) -> bool:
        return training_failed(self.task_status)

    @property
    def is_pending(self) -> bool:
        """A documented status of a training on its way (SUCCESS while the model deploys)."""
        return training_pending(self.task_status)

    @property
    def model_name(self) -> str | None:
        """The trained model's name (the SERVING one first), or None before training produced one."""
        return _serving_model_name(self.models)

    def model_status_of(self, model_name: str | None) -> str | None:
        """The status (DEPLOYING, SERVING, ...) of the model called `model_name`, if the task lists it."""
        return next((m.model_status or None for m in self.models if m.model_name == model_name), None)


class TrainingTask(_TrainingState):
    """One item of `GET /v3/training`."""

    task_name: Str = ""
    task_type: Str = ""  # subject | style
    created_at: Int = 0  # unix seconds


class TrainingList(list[TrainingTask]):
    """Every training of `GET /v3/training`, with how many pages the server sent them in."""

    def __init__(self, tasks: list[TrainingTask], pages: int) -> None:
        super().__init__(tasks)
        self.pages = pages


class TrainingStatus(_TrainingState):
    """`GET /v3/training/{subject,style}?task_id=`; `extra.progress_percent/eta_relative` lifted up."""

    model_type: Str = ""
    progress_percent: OptFloat = None
    eta_relative: OptFloat = None

    @model_validator(mode="before")
    @classmethod
    def _lift_extra(cls, data: Any) -> Any:
        if isinstance(data, dict):
            extra = data.get("extra")
            if isinstance(extra, dict):
                data = {**data, **{k: extra.get(k) for k in ("progress_percent", "eta_relative")}}
        return data


class ResultImage(_Lenient):
    image_url: Str
    image_type: Str = ""  # png | jpeg | webp
    image_url_ttl: Int = 0


_Images = Annotated[list[ResultImage], BeforeValidator(_list)]


class TaskResult(_Lenient):
    """`GET /v3/async/task-result?task_id=`, flattened: `task.*` at the top, `extra.seed` as `seed`."""

    task_id: Str
    status: Str = ""  # TASK_STATUS_QUEUED | _PROCESSING | _SUCCEED | _FAILED | anything else
    reason: Str = ""
    task_type: Str = ""
    progress_percent: OptFloat = None
    eta: OptFloat = None
    images: _Images = Field(default_factory=list)
    seed: Str | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "task" not in data:
            return data
        task = data.get("task")
        if not isinstance(task, dict):
            raise ValueError("'task' is not an object")
        extra = data.get("extra")
        seed = extra.get("seed") if isinstance(extra, dict) else None
        return {**task, "images": data.get("images"), "seed": None if seed in (None, "") else seed}

    @property
    def is_done(self) -> bool:
        return generation_succeeded(self.status)

    @property
    def is_failed(self) -> bool:
        return generation_failed(self.status)

    @property
    def is_pending(self) -> bool:
        return generation_pending(self.status)


class UploadTicket(_Lenient):
    assets_id: Str
    upload_url: Str
    method: Str = "PUT"


class Created(_Lenient):
    task_id: Str


TEN_THOUSANDTHS = 10_000  # the balance's unit: 1/10,000 USD ("10000" is $1.00)


class AccountBalance(_Lenient):
    """GET /openapi/v1/billing/balance/detail: integers (sent as strings) in 1/10,000 USD."""

    availableBalance: Int  # Novita's field names
    cashBalance: Int = 0
    creditLimit: Int = 0
    pendingCharges: Int = 0
    outstandingInvoices: Int = 0

    def usd(self, field: str) -> float:
        value: int = getattr(self, field)
        return value / TEN_THOUSANDTHS


@dataclass(frozen=True)
class DownloadedImage:
    path: Path
    sha256: str
    size: int
    format: str  # png | jpeg | webp, from the bytes


@dataclass(frozen=True)
class RetryInfo:
    """Passed to `on_retry` before each backoff sleep."""

    method: str
    url: str  # redacted: path for API calls, host/path for storage
    attempt: int  # the attempt that just failed, 1-based
    max_retries: int
    delay: float  # seconds about to be slept
    status: int | None  # HTTP status, None for a transport error
    reason: str  # Novita reason, storage error code, or the transport exception's class name

"""Pure: the statuses of a state entry, and the one reading of Novita's task statuses.

Every rule of the form "is this training done / failed / still on its way" lives here, so the planner,
the applier, the refresh and the client's typed answers agree (case-insensitively: Novita's casing is
not a contract). See docs/ARCHITECTURE.md, "State model".
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal


class Status(StrEnum):
    """Where a resource of the state stands. The values are what the state file stores."""

    SUBMITTING = "submitting"  # recorded before the create call: the task may or may not exist
    UNANSWERED = "unanswered"  # the create call got no answer (any 5xx, dropped, timed out): it may exist
    TRAINING = "training"  # LoraModel: Novita accepted the training (task id recorded); waiting for it
    RUNNING = "running"  # Generation: Novita accepted the task (task id recorded); waiting for it
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# A create that was sent (or about to be) and whose answer never reached the state: Novita may hold a task
# nobody recorded. A training is looked up by its name (a few times: a listing may lag a create) before anything
# is sent again; a generation, which Novita cannot list, follows the on_unanswered_submit policy.
SUBMIT_UNRESOLVED = frozenset({Status.SUBMITTING, Status.UNANSWERED})
# A training in flight: submitted (or being submitted, or unanswered) and not finished. Never resubmitted blindly.
TRAINING_IN_FLIGHT = frozenset({*SUBMIT_UNRESOLVED, Status.TRAINING})
# A task of either kind that Novita accepted and that has not finished: it keeps running remotely.
RUNNING_REMOTELY = frozenset({Status.TRAINING, Status.RUNNING})

# What to do with a generation whose submit got no answer (`on_unanswered_submit`; reconciler.plan.policy decides
# which applies): submit it again, or hold it for a person. A word of the manifests, reconciler.yaml and the flag.
OnUnanswered = Literal["resubmit", "hold"]
ON_UNANSWERED: tuple[OnUnanswered, ...] = ("resubmit", "hold")


# -- Novita's training statuses (GET /v3/training, GET /v3/training/{subject,style}) -------------------

TRAINING_FAILED = frozenset({"FAILED", "CANCELED"})
# Statuses documented for a training still on its way; SUCCESS counts while the model is still deploying.
TRAINING_PENDING = frozenset({"UNKNOWN", "QUEUING", "TRAINING", "SUCCESS"})


def training_succeeded(task_status: str, model_statuses: Iterable[str]) -> bool:
    """SUCCESS and a model SERVING: the LoRA is usable."""
    return task_status.upper() == "SUCCESS" and any(s.upper() == "SERVING" for s in model_statuses)


def training_failed(task_status: str) -> bool:
    return task_status.upper() in TRAINING_FAILED


def training_status(task_status: str, model_statuses: Iterable[str]) -> Status:
    """The one mapping from a training as Novita reports it to our Status: SUCCEEDED once its model serves,
    FAILED when it ended so, else TRAINING (still on its way, or a status Novita does not document)."""
    if training_succeeded(task_status, model_statuses):
        return Status.SUCCEEDED
    if training_failed(task_status):
        return Status.FAILED
    return Status.TRAINING


def training_pending(task_status: str) -> bool:
    """A documented status of a training not finished yet. Anything else ends a wait (never a hang)."""
    return task_status.upper() in TRAINING_PENDING


# -- Novita's async task statuses (GET /v3/async/task-result) ------------------------------------------

GENERATION_SUCCEEDED = "TASK_STATUS_SUCCEED"
GENERATION_FAILED = "TASK_STATUS_FAILED"
GENERATION_PENDING = frozenset({"TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING", "TASK_STATUS_UNKNOWN"})
NOT_FOUND = "NOT_FOUND"  # our own marker: task-result answered 404 for a task id we recorded


def generation_succeeded(status: str) -> bool:
    return status.upper() == GENERATION_SUCCEEDED


def generation_failed(status: str) -> bool:
    return status.upper() == GENERATION_FAILED


def generation_lost(status: str) -> bool:
    """Failed on Novita, or no longer known to it (404): either way it must run again."""
    return status.upper() in (GENERATION_FAILED, NOT_FOUND)


def generation_pending(status: str) -> bool:
    return status.upper() in GENERATION_PENDING

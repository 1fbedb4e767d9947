"""What an apply did: one typed outcome per resource, and the ways one resource can end without success.

Pure data: addresses, task references and Novita's own words (a status, an error's detail), never a sentence.
`reconciler.present.outcome` words them for the events, the summary line and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from reconciler.values import Value

StopReason = Literal["interrupt", "timeout"]
StopPoint = Literal["waiting", "submitting", "before-submit"]  # waiting: it keeps running on Novita
E = TypeVar("E")


class Task(Value):
    """A task on Novita as it is named to people: a training by its task name, a generation by its type and id."""

    kind: str  # "training", or a generation's task type ("txt2img", "img2img")
    ref: str  # a training's task name, a generation's task id

    @classmethod
    def training(cls, task_name: str) -> Task:
        return cls("training", task_name)


# -- why a resource failed ----------------------------------------------------------------------------------


class _Answered(Value):
    detail: str  # the other side's answer, in its own words


class Rejected(_Answered):
    """Novita refused a request for this resource (an HTTP error with a status); `detail` is its answer."""


class ClientError(Value):
    """The client gave up on a request (no answer after its retries, a transport error): its own message."""

    message: str


class UploadFailed(Value):
    image: str  # the image as shown (its path in the project)
    detail: str  # the storage's or the ticket's answer


class _OfTask(Value):
    task: Task  # the task on Novita this is about


class _TaskStatus(_OfTask):
    status: str  # Novita's status (or reason) for the task


class TaskEnded(_TaskStatus):
    """The task ended without success on Novita: a training's status (FAILED, CANCELED), a generation's reason."""


class UnknownStatus(_TaskStatus):
    """A status Novita does not document: waiting stops (no hang), the task stays recorded as in flight."""


class NoModelName(_OfTask):
    """The training serves, yet Novita names no model to generate with (it stays recorded as training)."""


class NoImages(_OfTask):
    """The generation task succeeded, yet Novita gave no image."""


class NotInAccount(_OfTask):
    """A training the plan adopts or resumes is no longer listed."""


class Unanswered(_OfTask):
    """No answer to `attempts` submits in this apply (the last one's `cause`); it stays recorded as unanswered.
    `task`: a training by its name; a generation by its type (ref "": no task id was given)."""

    attempts: int
    cause: str


class Held(Value):
    """A generation's submit got no answer and its policy is `hold`: a person decides (`apply --replace`)."""

    task_type: str
    cause: str


class OutputsChanged(Value):
    """The images a generation was to adopt changed on disk since the plan."""

    output: str  # the output folder as shown


class BadRecord(_Answered):
    """A record read from the outputs remote or a shared state failed a check (a sidecar, a path, a hash); `detail`:
    where it came from and what is wrong, as the check said it."""


class OutputsStoreFailed(_Answered):
    """The outputs remote failed (network, credentials, a full bucket, bytes that do not hash to their name)."""


class CopySourceLost(Value):
    """The run a move or copy takes its images from is gone: the generation that was to make it did not finish
    (`unfinished`), a file changed or vanished since the plan (`path`), or the run is nowhere on record any more."""

    owner: str
    path: str | None = None
    unfinished: bool = False


Cause = (
    Rejected
    | ClientError
    | UploadFailed
    | TaskEnded
    | UnknownStatus
    | NoModelName
    | NoImages
    | NotInAccount
    | Unanswered
    | Held
    | OutputsChanged
    | BadRecord
    | OutputsStoreFailed
    | CopySourceLost
)


# -- one outcome per resource -------------------------------------------------------------------------------


class Succeeded(Value):
    """Done by this apply: trained until it serves, or generated with its images written."""


class Adopted(Value):
    """Found done (a training in the account, images on disk or in the outputs remote) and recorded."""


class Submitted(Value):
    """--no-wait: submitted (or found in flight) and recorded; a later apply collects it."""


class Failed(Value):
    cause: Cause


class Blocked(Value):
    """Not attempted: the LoRA it needs (`needs`, an address) failed, was itself blocked, or has no trained model
    (`because` None)."""

    needs: str
    because: Failed | Blocked | Unfunded | None = None


class Unfunded(Value):
    """Not submitted for want of balance: Novita refused this submit (`refused`: its answer), or one before it in
    this apply (None). Nothing was made; the next apply, after a top-up, submits it."""

    refused: str | None = None


class Postponed(Value):
    """Not attempted yet, and not a failure: the training it needs is in flight and this apply does not wait for
    it (--no-wait, or that training `stalled`). The next apply does it."""

    needs: str
    stalled: bool = False


class Stuck(_OfTask):
    """No progress for `idle` seconds (last seen `where`): this apply stopped waiting; it stays in flight."""

    idle: float
    where: str


class Stopped(Value):
    """Cut short by Ctrl-C or the --timeout deadline, at one of three points."""

    by: StopReason
    at: StopPoint


Ending = Literal["complete", "failed", "interrupted", "timed out"]
Outcome = Succeeded | Adopted | Submitted | Failed | Blocked | Unfunded | Postponed | Stuck | Stopped


class StillRunning(Value):
    """A task the state records as running on Novita when the apply ended (the next apply collects it)."""

    address: str
    task: str  # a training's task name (else its id), a generation's task id


# -- how a resource's work ends without success (raised inside the applier) ---------------------------------


class ResourceFailed(Exception):
    """This resource failed, for `cause`."""

    def __init__(self, cause: Cause) -> None:
        super().__init__(cause)
        self.cause = cause


class _EndsAs(Exception, Generic[E]):
    """The resource's work ends here, with `outcome` (recorded as it is)."""

    def __init__(self, outcome: E) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Skipped(_EndsAs[Blocked | Unfunded]):
    """Not attempted because a LoRA it needs failed or has no trained model, or for want of balance."""


class Deferred(_EndsAs[Postponed]):
    """Not attempted yet, and not a failure: a training it needs is still in flight (see `Postponed`)."""


class Stalled(_EndsAs[Stuck]):
    """The task showed no progress for longer than the ceiling: this apply stops waiting on it. It stays recorded
    as in flight, so the next apply checks it again; nothing is resubmitted."""


class Interrupted(Exception):
    """Ctrl-C (or the --timeout deadline): stop submitting and stop waiting."""


@dataclass
class ApplyResult:
    uploaded: int = 0
    trained: int = 0
    adopted: int = 0
    generated: int = 0
    images: int = 0
    resumed: int = 0
    forgotten: int = 0
    pruned: int = 0
    moved_to_history: int = 0  # images of replaced generations moved into their history folders
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # address -> how its work in this apply ended
    moved: int = 0  # generations whose run moved into their declared folder (free)
    copied: int = 0  # generations whose run was copied from where the project holds it (free)
    # generations submitted again after a submit that got no answer (one entry per resubmit): may be paid twice
    resubmitted: list[str] = field(default_factory=list)
    still_running: list[StillRunning] = field(default_factory=list)
    interrupted: bool = False
    timed_out: bool = False
    elapsed: float = 0.0

    @property
    def failed(self) -> dict[str, Failed]:
        return {a: o for a, o in self.outcomes.items() if isinstance(o, Failed)}

    @property
    def skipped(self) -> dict[str, Blocked | Unfunded]:
        """Not attempted: what it needs failed, or the balance ran out (`unfunded`)."""
        return {a: o for a, o in self.outcomes.items() if isinstance(o, Blocked | Unfunded)}

    @property
    def ending(self) -> Ending:
        """How the apply as a whole ended (the closing line's head; the spend ledger records it)."""
        if self.interrupted:
            return "interrupted"
        if self.failed or self.skipped:
            return "failed"
        if self.timed_out or self.stalled:
            return "timed out"
        return "complete"

    @property
    def unfunded(self) -> bool:
        """Novita refused a submit for want of balance: nothing more was submitted in this apply."""
        return any(isinstance(o, Unfunded) for o in self.outcomes.values())

    @property
    def deferred(self) -> dict[str, Postponed]:
        """What waits for a training in flight: the next apply does it."""
        return {a: o for a, o in self.outcomes.items() if isinstance(o, Postponed)}

    @property
    def stalled(self) -> dict[str, Stuck]:
        return {a: o for a, o in self.outcomes.items() if isinstance(o, Stuck)}

    @property
    def stopped(self) -> dict[str, Stopped]:
        """Cut short by Ctrl-C or the deadline."""
        return {a: o for a, o in self.outcomes.items() if isinstance(o, Stopped)}

    @property
    def submitted_not_waited(self) -> list[str]:
        return [a for a, o in self.outcomes.items() if isinstance(o, Submitted)]

    @property
    def ok(self) -> bool:
        """Everything that could be done now was done (what waits for a training in flight included)."""
        return not (self.failed or self.skipped or self.stalled or self.interrupted or self.timed_out)

    def counts(self) -> dict[str, object]:
        """The figures of the `apply_complete` event."""
        return {
            "uploaded": self.uploaded,
            "trained": self.trained,
            "adopted": self.adopted,
            "generated": self.generated,
            "images": self.images,
            "failed": len(self.failed),
            "skipped": len(self.skipped),
            "deferred": len(self.deferred),
            "stalled": len(self.stalled),
            "stopped": len(self.stopped),
            "resubmitted": len(self.resubmitted),
            "resumed": self.resumed,
            "forgotten": self.forgotten,
            "pruned": self.pruned,
            "moved_to_history": self.moved_to_history,
            "moved": self.moved,
            "copied": self.copied,
            "submitted_not_waited": self.submitted_not_waited,
            "interrupted": self.interrupted,
            "timed_out": self.timed_out,
            "still_running": len(self.still_running),
            "elapsed_seconds": round(self.elapsed, 3),
        }

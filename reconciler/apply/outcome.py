"""What an apply did, and the ways one resource can end without success. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.text import duration, plural


class ResourceFailed(Exception):
    """This resource failed; the message says why (with Novita's reason)."""


class Skipped(Exception):
    """Not attempted because something it needs failed or has no result yet."""


class Deferred(Skipped):
    """Not attempted yet, and not a failure: a training it needs is still in flight on Novita and this apply does not
    wait for it (--no-wait, or that training stopped making progress). The next apply does it."""


class Stalled(Exception):
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
    moved: int = 0  # generations whose run moved into their declared folder (free)
    copied: int = 0  # generations whose run was copied from where the project holds it (free)
    submitted_not_waited: list[str] = field(default_factory=list)
    # generations submitted again after a submit that got no answer (one entry per resubmit): may be paid twice
    resubmitted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # waits for a training in flight: the next apply does it
    stalled: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # cut short by Ctrl-C or the deadline
    still_running: list[str] = field(default_factory=list)
    interrupted: bool = False
    timed_out: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Everything that could be done now was done (what waits for a training in flight included)."""
        return not (self.failed or self.skipped or self.stalled or self.interrupted or self.timed_out)

    @property
    def head(self) -> str:
        if self.interrupted:
            return "Apply interrupted"
        if self.failed or self.skipped:
            return "Apply failed"
        if self.timed_out or self.stalled:
            return "Apply timed out"
        return "Apply complete"

    def summary(self) -> str:
        text = (
            f"{self.head}: {self.uploaded} uploaded, {self.trained} trained, {self.adopted} adopted, "
            f"{self.generated} generated ({plural(self.images, 'image')}), {len(self.failed)} failed"
        )
        if self.moved or self.copied:
            text += f", {self.moved} moved, {self.copied} copied (free)"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        if self.stalled:
            text += f", {len(self.stalled)} stalled"
        if self.deferred:
            text += f", {len(self.deferred)} left for the next apply (waiting for trainings in flight)"
        if self.pruned:
            text += f", {self.pruned} pruned"
        if self.resubmitted:
            text += f", {len(self.resubmitted)} resubmitted after no answer (may be paid twice)"
        return text + f" in {duration(self.elapsed)}."

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

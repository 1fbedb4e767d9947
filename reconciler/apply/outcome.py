"""What an apply did, and the three ways one resource can end without success. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.text import duration, plural


class ResourceFailed(Exception):
    """This resource failed; the message says why (with Novita's reason)."""


class Skipped(Exception):
    """Not attempted because something it needs failed or is still running."""


class Deferred(Skipped):
    """--no-wait: it waits for a training still running; the next apply does it. Not a failure."""


class Interrupted(Exception):
    """Ctrl-C: stop submitting."""


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
    submitted_not_waited: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # --no-wait: left for the next apply, as asked
    still_running: list[str] = field(default_factory=list)
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted

    def summary(self) -> str:
        head = "Apply complete" if self.ok else ("Apply interrupted" if self.interrupted else "Apply failed")
        text = (
            f"{head}: {self.uploaded} uploaded, {self.trained} trained, {self.adopted} adopted, "
            f"{self.generated} generated ({plural(self.images, 'image')}), {len(self.failed)} failed"
        )
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        if self.deferred:
            text += f", {len(self.deferred)} left for the next apply (--no-wait)"
        if self.pruned:
            text += f", {self.pruned} pruned"
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
            "resumed": self.resumed,
            "forgotten": self.forgotten,
            "pruned": self.pruned,
            "moved_to_history": self.moved_to_history,
            "submitted_not_waited": self.submitted_not_waited,
            "elapsed_seconds": round(self.elapsed, 3),
        }

"""Pure data: what was observed of the world before planning.

The account's trainings (the whole `GET /v3/training` listing, with progress for those in flight), the
status of the generation tasks the state holds in flight, and what is in each generation's output folder.
The refresh and the outputs observer fill these in; the planner only reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from reconciler.status import training_failed, training_succeeded


class ListedTraining(Protocol):
    """A training as the client lists it (`reconciler.novita.TrainingTask` has this shape)."""

    @property
    def task_id(self) -> str: ...
    @property
    def task_name(self) -> str: ...
    @property
    def task_type(self) -> str: ...
    @property
    def task_status(self) -> str: ...
    @property
    def created_at(self) -> int: ...
    @property
    def model_name(self) -> str | None: ...
    def model_status_of(self, model_name: str | None) -> str | None: ...


@dataclass(frozen=True)
class AccountTraining:
    """One task of `GET /v3/training`, plus progress when its status was fetched."""

    task_id: str
    task_name: str
    task_type: str
    status: str
    created_at: int = 0
    model_name: str | None = None
    model_status: str | None = None
    progress: float | None = None
    eta: float | None = None

    @classmethod
    def listed(cls, task: ListedTraining, progress: float | None = None, eta: float | None = None) -> AccountTraining:
        return cls(
            task_id=task.task_id,
            task_name=task.task_name,
            task_type=task.task_type,
            status=task.task_status,
            created_at=task.created_at,
            model_name=task.model_name,
            model_status=task.model_status_of(task.model_name),
            progress=progress,
            eta=eta,
        )

    @property
    def succeeded(self) -> bool:
        return training_succeeded(self.status, [self.model_status or ""])

    @property
    def failed(self) -> bool:
        return training_failed(self.status)

    def describe(self) -> str:
        return describe_training(self.status, self.progress, self.model_status)


@dataclass(frozen=True)
class AccountGeneration:
    task_id: str
    status: str  # TASK_STATUS_* or status.NOT_FOUND
    reason: str = ""
    progress: float | None = None


@dataclass(frozen=True)
class Account:
    """What a refresh saw: the whole training list, and the generations the state holds in flight."""

    trainings: tuple[AccountTraining, ...]
    generations: Mapping[str, AccountGeneration] = field(default_factory=dict)
    pages: int = 0
    # indexes over `trainings`, built once (a plan looks up every model: scanning would be quadratic)
    _by_name: dict[str, list[AccountTraining]] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, AccountTraining] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, list[AccountTraining]] = {}
        by_id: dict[str, AccountTraining] = {}
        for t in self.trainings:
            by_name.setdefault(t.task_name, []).append(t)
            by_id.setdefault(t.task_id, t)  # the first of a repeated id, as a scan would find
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_id", by_id)

    def named(self, task_name: str) -> list[AccountTraining]:
        """Tasks with this name, the most useful first: succeeded, then in flight, then failed; newest first."""
        return best_first(self._by_name.get(task_name, []))

    def live(self, task_name: str) -> AccountTraining | None:
        """The most useful task with this name that did not fail, if any."""
        return next((t for t in self.named(task_name) if not t.failed), None)

    def by_id(self, task_id: str) -> AccountTraining | None:
        return self._by_id.get(task_id)

    def answer_to(self, task_name: str, prior: Iterable[str]) -> AccountTraining | None:
        """The task a create named `task_name` made, if the account lists one: the most useful task of that name
        that is not one of `prior` (those were there before the create). It may have FAILED already."""
        before = set(prior)
        return next((t for t in self.named(task_name) if t.task_id not in before), None)


def describe_training(status: str, progress: float | None, model_status: str | None) -> str:
    """`SUCCESS, SERVING`, `TRAINING 40%`: a training's status as the account lists it."""
    parts = [status]
    if status == "TRAINING" and progress is not None:
        parts[0] = f"TRAINING {progress:.0f}%"
    if model_status:
        parts.append(model_status)
    return ", ".join(parts)


def best_first(tasks: Iterable[AccountTraining]) -> list[AccountTraining]:
    """Succeeded, then in flight, then failed; newest first within each."""
    return sorted(tasks, key=lambda t: (0 if t.succeeded else 2 if t.failed else 1, -t.created_at))


@dataclass(frozen=True)
class RemoteSidecar:
    """A sidecar the outputs remote holds for a generation: the run it records and its images (path, sha256)."""

    identity: str
    files: tuple[tuple[str, str], ...]
    task_id: str | None = None
    seed: str | None = None


@dataclass(frozen=True)
class SkippedRecord:
    """A record read from outside (the state's entry, a sidecar on disk or in the outputs remote) that failed a
    check: `where` it came from, what the `problem` is, and the `address` that is planned as if it were not there."""

    kind: ClassVar[str] = "skipped_record"
    where: str
    problem: str
    address: str


@dataclass(frozen=True)
class OutputFacts:
    """What is on disk for one generation: are the files recorded in state intact, and the sidecar; and what
    the outputs remote holds of it, when one is configured."""

    files_intact: bool  # every file recorded in state exists with its recorded hash
    missing: int = 0  # how many recorded files are missing or changed
    sidecar_identity: str | None = None  # identity in the output folder's sidecar, if its files are intact
    sidecar_files: tuple[tuple[str, str], ...] = ()  # (path, sha256) the sidecar records, verified
    sidecar_task_id: str | None = None
    sidecar_seed: str | None = None
    remote: bool = False  # an outputs remote is configured
    in_remote: bool = False  # it holds the sidecar of the state's run and every image the state records
    remote_sidecars: tuple[RemoteSidecar, ...] = ()  # after a state loss: runs the remote holds, to adopt
    warnings: tuple[SkippedRecord, ...] = ()  # sidecars that failed a check (here or in the remote): skipped, and why


@dataclass(frozen=True)
class PruneFile:
    """A file `apply --prune` may remove: a generation's history, or a forgotten generation's output."""

    path: str  # relative to the project folder
    sha256: str  # as recorded when it was written (or moved aside)
    size: int
    owner: str  # the generation's address
    what: str  # "history" | "forgotten"


@dataclass(frozen=True)
class OrphanFacts:
    """The recorded outputs no current generation shows, as found on disk."""

    removable: tuple[PruneFile, ...] = ()  # present with the recorded hash
    changed: tuple[str, ...] = ()  # present but changed since written: never removed

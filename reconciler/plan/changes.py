"""Pure: what a plan is: one ResourceChange per resource that needs something, and the Plan that holds them.

An Action is what happens to a resource; its Reason (`reconciler.plan.reasons`) says why, as a value. To add an
action: add it to `Action` here and give it a row in `reconciler.present.render.ACTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from reconciler.observe.facts import PruneFile
from reconciler.observe.runcache import Holding
from reconciler.plan.reasons import HeldUnanswered, Note, PlanWarning, Reason

if TYPE_CHECKING:
    from reconciler.plan.estimate import Estimate

Action = Literal["create", "replace", "resume", "adopt", "forget", "move", "copy"]


@dataclass(frozen=True)
class AttrChange:
    """One manifest-owned attribute that changed: `path: before → after`."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceChange:
    """What the plan does to one resource, and why (`reason`, a value `reconciler.present.wording` words)."""

    address: str
    action: Action
    reason: Reason
    changes: tuple[AttrChange, ...] = ()
    notes: tuple[Note, ...] = ()
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    task_name: str | None = None  # LoraModel: the task to create, adopt or wait for
    task_id: str | None = None  # resume / adopt: the task to wait for or record
    model_name: str | None = None  # adopt: the trained model, when already known
    uploads: tuple[str, ...] = ()  # Dataset: image hashes its trainings will upload
    images: int = 0  # Generation: images it will produce
    # LoraModel create/replace: the ids of the account's tasks with this task name when planned (None: planned
    # offline). A look-up after an unanswered create never takes one of them for the task it made.
    known_tasks: tuple[str, ...] | None = None
    source: Holding | None = None  # move / copy: where the run's images come from (see plan.freeactions)

    @property
    def kind(self) -> str:
        return self.address.partition("/")[0]

    @property
    def name(self) -> str:
        return self.address.partition("/")[2]

    @property
    def paid(self) -> bool:
        """Carrying it out costs money on Novita (a training or a generation); everything else is free."""
        return self.reason.paid


@dataclass(frozen=True)
class RefreshSummary:
    pages: int
    tasks: int
    ours: int
    in_flight: int


@dataclass(frozen=True)
class Plan:
    changes: tuple[ResourceChange, ...]
    state_serial: int
    state_lineage: str
    desired_digest: str
    refresh: RefreshSummary | None = None
    targets: tuple[str, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()  # resources held for a person's decision; records skipped as untrusted
    # with an outputs remote: (address, images) of unchanged generations whose images only need copying, free
    fetches: tuple[tuple[str, int], ...] = ()  # in the remote, missing here: written into the output folder
    stores: tuple[tuple[str, int], ...] = ()  # here, missing in the remote: stored in it
    prune: bool = False  # --prune: `prunable` is part of the plan
    prunable: tuple[PruneFile, ...] = ()  # history and forgotten outputs `apply --prune` removes
    prune_kept: tuple[str, ...] = ()  # such files changed since they were written: never removed
    estimate: Estimate | None = None  # what applying it pays for and takes (set by the workflow, not the planner)

    @property
    def held(self) -> tuple[HeldUnanswered, ...]:
        """The warnings about resources held for a person's decision."""
        return tuple(w for w in self.warnings if isinstance(w, HeldUnanswered))

    def get(self, addr: str) -> ResourceChange | None:
        for change in self.changes:
            if change.address == addr:
                return change
        return None

    @property
    def paid(self) -> tuple[ResourceChange, ...]:
        """The changes that cost money on Novita; everything else in the plan is free."""
        return tuple(c for c in self.changes if c.paid)

    @property
    def empty(self) -> bool:
        return not self.changes and not (self.prune and self.prunable)

    def count(self, kind: str, *actions: Action) -> int:
        return sum(1 for c in self.changes if c.kind == kind and c.action in actions)

    @property
    def uploads(self) -> int:
        return len({h for c in self.changes for h in c.uploads})

    @property
    def trainings(self) -> int:
        return self.count("LoraModel", "create", "replace")

    @property
    def waits(self) -> int:
        return sum(1 for c in self.changes if c.action == "resume")

    @property
    def adopts(self) -> int:
        return sum(1 for c in self.changes if c.action == "adopt")

    @property
    def generations(self) -> int:
        return self.count("Generation", "create", "replace")

    @property
    def generation_images(self) -> int:
        return sum(c.images for c in self.changes if c.kind == "Generation" and c.action in ("create", "replace"))

    @property
    def forgets(self) -> int:
        return sum(1 for c in self.changes if c.action == "forget")

    @property
    def fetch_images(self) -> int:
        return sum(n for _, n in self.fetches)

    @property
    def store_images(self) -> int:
        return sum(n for _, n in self.stores)

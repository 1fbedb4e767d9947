"""The run cache: every paid result, found by its identity (what was asked of Novita), not by its name or folder.

A pure value built at the observe stage (`reconciler.observe.holdings` fills it in) and handed to the planner,
which looks an identity up before it plans anything that costs money: a hit is a free action (move, copy, adopt).

- A generation's images are held where their files are, each verified (hash-checked through the stat cache, or
  listed by hash in the outputs remote): the state's current entries, a replaced generation's `history` records,
  forgotten generations' records, output folders' sidecars and `history/<12 hex>/` folders, and the outputs
  remote's sidecars.
- A training is held by the state (an entry with that identity) or by the account's listing, looked up by the
  first 8 hex of its identity that every task name carries (`<name>-<8 hex>`): so a renamed LoraModel finds its
  own training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Source = Literal["state", "history", "forgotten", "folder", "remote", "plan"]
TrainingSource = Literal["state", "account"]

# Where a copy comes from best: the local disk before the remote, a record before a bare folder.
_PREFERENCE: dict[str, int] = {"state": 0, "history": 1, "forgotten": 2, "folder": 3, "remote": 4, "plan": 5}


@dataclass(frozen=True)
class Holding:
    """One place that holds every image of a generation's run, verified when observed.

    `files` are (path relative to the project folder, sha256) in the run's order; for the outputs remote the path
    is where the owner's images were written (`remote` fetches them by hash). `owner` is the address of the
    generation whose record it is ("" for a folder's sidecar no record names)."""

    identity: str
    source: Source
    owner: str
    files: tuple[tuple[str, str], ...]
    where: str  # for people: the folder, or "the outputs remote"
    task_id: str | None = None
    seed: str | None = None


@dataclass(frozen=True)
class TrainingHolding:
    """A training of an identity: a state entry (full identity) or a task of the account's listing."""

    identity: str  # the full identity (state), or the 8 hex a task name carries (account)
    source: TrainingSource
    owner: str  # the LoraModel address (state) or the task name (account)
    task_name: str
    task_id: str | None
    model_name: str | None  # the trained model, once it serves
    succeeded: bool
    failed: bool = False


@dataclass(frozen=True)
class RunCache:
    """identity -> where it is held. Look-ups only; built once per plan."""

    generations: Mapping[str, tuple[Holding, ...]] = field(default_factory=dict)
    trainings: Mapping[str, tuple[TrainingHolding, ...]] = field(default_factory=dict)  # by the first 8 hex

    def find(self, identity: str) -> tuple[Holding | TrainingHolding, ...]:
        """Every holding of `identity`, best first: its generation runs, then its trainings."""
        return (*self.generation(identity), *self.training(identity))

    def generation(self, identity: str) -> tuple[Holding, ...]:
        return self.generations.get(identity, ())

    def training(self, identity: str) -> tuple[TrainingHolding, ...]:
        """Trainings of this identity that did not fail: state entries first (they know the whole identity), then
        the account's tasks named with its 8 hex; succeeded before in flight."""
        found = [t for t in self.trainings.get(identity[:8], ()) if not t.failed]
        found = [t for t in found if t.source == "account" or t.identity == identity]
        return tuple(sorted(found, key=lambda t: (t.source != "state", not t.succeeded)))


def run_cache(holdings: Iterable[Holding], trainings: Iterable[TrainingHolding] = ()) -> RunCache:
    """The cache of these holdings: per identity, best source first, one holding per (source, owner, files)."""
    by_identity: dict[str, dict[tuple[str, str, tuple[tuple[str, str], ...]], Holding]] = {}
    for h in holdings:
        if not h.identity or not h.files:
            continue
        by_identity.setdefault(h.identity, {}).setdefault((h.source, h.owner, h.files), h)
    generations = {
        identity: tuple(sorted(found.values(), key=lambda h: (_PREFERENCE[h.source], h.owner, h.where)))
        for identity, found in by_identity.items()
    }
    by_prefix: dict[str, list[TrainingHolding]] = {}
    for t in trainings:
        by_prefix.setdefault(t.identity[:8], []).append(t)
    return RunCache(generations, {k: tuple(v) for k, v in by_prefix.items()})


def task_hash(task_name: str) -> str | None:
    """The 8 hex of identity a task name `<name>-<8 hex>` carries, if it has that shape."""
    _, dash, tail = task_name.rpartition("-")
    if dash and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail):
        return tail
    return None

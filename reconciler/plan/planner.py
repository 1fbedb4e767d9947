"""Pure: (desired, state, account, outputs on disk) -> Plan. No files, no HTTP, no clock, no randomness.

The orchestration only: which resources a plan covers (`--target`), in which order they are decided (models
first: their decisions say which trained models their generations can use), and how the decisions make a
Plan. Each decision lives with its kind: `lora_models`, `generations`, `datasets`, `forget`. The same inputs
always give the same plan: anything from a set or a dict is sorted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from reconciler.desired.resources import Desired, address, matrix_address, sort_key
from reconciler.load.matrix import normalise_address
from reconciler.observe.facts import Account, OrphanFacts, OutputFacts
from reconciler.observe.runcache import RunCache
from reconciler.plan.changes import Plan, RefreshSummary, ResourceChange
from reconciler.plan.datasets import decide_dataset, trainings_by_dataset
from reconciler.plan.forget import forget
from reconciler.plan.freeactions import Lookups
from reconciler.plan.generations import GenerationDecision, decide_generation
from reconciler.plan.inputs import Inputs
from reconciler.plan.lora_models import decide_model
from reconciler.plan.policy import SubmitPolicy
from reconciler.state import ForgottenEntry, State
from reconciler.state.model import LedgerEntry


def plan(
    desired: Desired,
    state: State,
    remote: Account | None,
    outputs: Mapping[str, OutputFacts] | None = None,
    targets: Iterable[str] = (),
    replace: Iterable[str] = (),
    orphans: OrphanFacts | None = None,
    prune: bool = False,
    policy: SubmitPolicy | None = None,
    run_cache: RunCache | None = None,
) -> Plan:
    """The changes that make Novita and the outputs match the manifests.

    `remote` (the account) is None for an offline plan (`--no-refresh`): the state is then trusted as it is.
    `targets` limits the plan to those addresses (a matrix: all its members) and what they depend on;
    `replace` forces those resources to be trained or generated again even though nothing changed.
    `orphans` are the recorded history and forgotten outputs found on disk; with `prune` removing them is
    part of the plan, else the plan only counts them. `policy` says what to do with a generation whose
    submit got no answer (see `reconciler.plan.policy`). `run_cache` says where each identity is already held: a
    hit is a free action (`reconciler.plan.freeactions`), never a paid one.
    """
    replaced = frozenset(desired.expand(list(replace)))
    look = Lookups(cache=run_cache or RunCache())
    inputs = Inputs(desired, state, remote, outputs or {}, replaced, policy or SubmitPolicy(), look)
    scope = _Scope.of(desired, targets)
    models = {name: decide_model(inputs, desired.models[name]) for name in sorted(desired.models)}
    generations = {
        gen.address: decide_generation(inputs, gen, models)
        for name in sorted(desired.generations)
        if scope.covers((gen := desired.generations[name]).address)
    }
    changes = [d.change for d in models.values() if d.change and scope.covers(d.change.address)]
    changes += [d.change for d in generations.values() if d.change]
    trainings = trainings_by_dataset(inputs, changes)
    changes += [
        change
        for name in sorted(desired.datasets)
        if scope.covers(address("Dataset", name)) and (change := decide_dataset(inputs, name, trainings))
    ]
    found = orphans or OrphanFacts()
    return Plan(
        changes=(*sorted(changes, key=lambda c: sort_key(c.address)), *_forgets(inputs, scope, prune)),
        state_serial=state.serial,
        state_lineage=state.lineage if state.serial else "",  # "" = no state file yet
        desired_digest=desired.digest(),
        refresh=_refresh_summary(inputs, remote) if remote is not None else None,
        targets=scope.targets,
        warnings=tuple(d.held for d in generations.values() if d.held),
        fetches=_outputs(generations, lambda d: d.fetch),
        stores=_outputs(generations, lambda d: d.store),
        prune=prune,
        prunable=tuple(f for f in found.removable if scope.targeted(f.owner)),
        prune_kept=found.changed,
    )


@dataclass(frozen=True)
class _Scope:
    """What `--target` leaves in the plan: the targets (a matrix stands for its members in the manifests, and
    itself for those only the state still holds) and what they depend on. No targets: everything."""

    targets: tuple[str, ...]
    chosen: frozenset[str]
    closure: frozenset[str] | None  # None: no targets

    @classmethod
    def of(cls, desired: Desired, targets: Iterable[str]) -> _Scope:
        ordered = tuple(sorted(set(targets), key=sort_key))
        chosen = frozenset({*map(normalise_address, ordered), *desired.expand(list(ordered))})
        closure = frozenset(desired.closure([t for t in chosen if desired.has(t)])) if ordered else None
        return cls(ordered, chosen, closure)

    def covers(self, addr: str) -> bool:
        """A resource of the manifests the plan decides."""
        return self.closure is None or addr in self.closure

    def targeted(self, addr: str) -> bool:
        """A resource only the state holds (or its outputs) the plan decides."""
        return self.closure is None or addr in self.chosen or matrix_address(addr) in self.chosen


def _forgets(inputs: Inputs, scope: _Scope, prune: bool) -> list[ResourceChange]:
    return [
        forget(addr, entry, prune)
        for addr, entry in sorted(inputs.state.resources.items(), key=lambda kv: sort_key(kv[0]))
        if not inputs.desired.has(addr)
        and not isinstance(entry, ForgottenEntry | LedgerEntry)
        and addr not in inputs.look.claimed  # moved to the address that now has its run
        and scope.targeted(addr)
    ]


def _outputs(
    generations: Mapping[str, GenerationDecision], count: Callable[[GenerationDecision], int | None]
) -> tuple[tuple[str, int], ...]:
    return tuple((addr, n) for addr, d in generations.items() if (n := count(d)) is not None)


def _refresh_summary(inputs: Inputs, account: Account) -> RefreshSummary:
    ours_names = {m.task_name for m in inputs.desired.models.values()}
    ours_names |= {e.task_name for e in inputs.state.models() if e.task_name}
    ours = sum(1 for t in account.trainings if t.task_name in ours_names)
    in_flight = sum(1 for e in inputs.state.models() if e.in_flight)
    return RefreshSummary(account.pages, len(account.trainings), ours, in_flight)

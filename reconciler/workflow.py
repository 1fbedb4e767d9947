"""The commands as library functions: typed inputs in, typed results out; the CLI only parses, prints, exits.

Each function here is one command's workflow (plan, apply, refresh, import, state rm): load the manifests,
take the lock, read the state, talk to Novita through one client, hand the pure parts their inputs. What a
person must see or decide in the middle of a run (the plan before approval, the approval itself, a note
about a lock taken over) goes through the `ApplyUI` the caller passes in.
"""

from __future__ import annotations

import asyncio
import difflib
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.apply import Applier, ApplyOptions, ApplyResult
from reconciler.desired import Desired
from reconciler.errors import ReconcilerError, UsageError
from reconciler.hashing import HashCache
from reconciler.plan import Plan
from reconciler.progress import Reporter
from reconciler.remote import OutputFacts, Remote
from reconciler.state import ModelEntry, State, describe_holder, now_iso
from reconciler.status import Status
from reconciler.workspace import Endpoint, Settings, load_desired, make_client, novita_endpoint


def check_targets(desired: Desired, state: State, targets: Iterable[str], option: str = "--target") -> None:
    """Every address given on the command line names a resource of the manifests or the state."""
    known = set(desired.addresses()) | set(state.resources)
    unknown = [t for t in targets if t not in known]
    if unknown:
        hints = []
        for t in unknown:
            near = difflib.get_close_matches(t, sorted(known), n=1)
            hints.append(f"{t}" + (f" (did you mean {near[0]}?)" if near else ""))
        raise UsageError(f"Invalid value for '{option}': no such resource: " + ", ".join(hints))


def make_plan(
    settings: Settings, desired: Desired, cache: HashCache, state: State, endpoint: Endpoint | None
) -> tuple[Plan, dict[str, OutputFacts]]:
    """Refresh (unless offline), observe the outputs, and plan; the outputs seen go on to apply."""
    from reconciler.outputs import observe
    from reconciler.plan import plan

    remote = None
    if endpoint is not None:
        from reconciler.refresh import refresh

        async def go() -> Remote:
            async with make_client(endpoint) as client:
                return await refresh(client, state)

        remote = asyncio.run(go())
    outputs = observe(desired, state, cache, settings.root)
    result = plan(desired, state, remote, outputs, settings.targets, settings.replace)
    cache.save()
    return result, outputs


def plan_command(settings: Settings, *, refresh: bool = True) -> Plan:
    """`reconciler plan`: what apply would do. Reads the state without locking it; changes nothing."""
    desired, cache = load_desired(settings)
    with settings.backend() as backend:
        state = backend.read()
    check_targets(desired, state, settings.targets)
    check_targets(desired, state, settings.replace, "--replace")
    if not refresh:
        return make_plan(settings, desired, cache, state, None)[0]
    with novita_endpoint(settings) as endpoint:
        return make_plan(settings, desired, cache, state, endpoint)[0]


class ApplyUI(Protocol):
    """What `apply_command` needs from whoever runs it (the CLI, a test)."""

    def notice(self, text: str) -> None:
        """A note for the person running apply (e.g. a lock taken over from a killed apply)."""

    def show_plan(self, plan: Plan) -> None:
        """The plan about to be applied (not called for a saved plan)."""

    def confirm(self, plan: Plan) -> bool:
        """Approval to apply `plan`; False cancels with nothing changed."""

    def reporter(self) -> Reporter:
        """Where the applier's events go (created once, when applying starts)."""

    def interrupted(self) -> None:
        """The first Ctrl-C arrived: say that submitting stops and the state is being saved."""


@dataclass(frozen=True)
class ApplyOutcome:
    plan: Plan
    result: ApplyResult | None = None  # None: nothing to apply, or cancelled
    cancelled: bool = False


def apply_command(
    settings: Settings, options: ApplyOptions, ui: ApplyUI, *, planfile: Path | None = None
) -> ApplyOutcome:
    """`reconciler apply`: plan (or load a saved plan and check it is fresh), confirm, apply."""
    from reconciler.outputs import observe
    from reconciler.planfile import check_fresh, load_plan

    desired, cache = load_desired(settings)
    with (
        settings.backend() as backend,
        backend.lock(timeout=settings.lock_timeout, command="apply") as lock,
    ):
        if lock.took_over:
            ui.notice(
                f"Note: the previous apply ({describe_holder(lock.took_over)}) ended without releasing the lock "
                "(killed?); it no longer runs, so this apply takes over and resumes its work."
            )
        store = backend.open()
        check_targets(desired, store.state, settings.targets)
        check_targets(desired, store.state, settings.replace, "--replace")
        with novita_endpoint(settings) as endpoint:
            if planfile is not None:
                the_plan = load_plan(planfile)
                check_fresh(
                    the_plan,
                    planfile,
                    serial=store.state.serial,
                    lineage=store.state.lineage,
                    desired_digest=desired.digest(),
                )
                outputs = observe(desired, store.state, cache, settings.root)
            else:
                the_plan, outputs = make_plan(settings, desired, cache, store.state, endpoint)
                ui.show_plan(the_plan)
                if the_plan.empty:
                    return ApplyOutcome(the_plan)
                if not ui.confirm(the_plan):
                    return ApplyOutcome(the_plan, cancelled=True)
            if the_plan.empty:
                return ApplyOutcome(the_plan)
            applier = Applier(
                the_plan, desired, store, make_client(endpoint), ui.reporter(), options, settings.root, outputs
            )
            return ApplyOutcome(the_plan, _run(applier, ui))


def _run(applier: Applier, ui: ApplyUI) -> ApplyResult:
    """Run the applier on an event loop; the first Ctrl-C (or SIGTERM) stops submitting, a second one at once."""

    async def go() -> ApplyResult:
        async with applier.run_.client:
            loop = asyncio.get_running_loop()

            def on_sigint() -> None:
                ui.interrupted()
                applier.interrupt()
                loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C stops at once

            loop.add_signal_handler(signal.SIGINT, on_sigint)
            loop.add_signal_handler(signal.SIGTERM, applier.interrupt)
            try:
                return await applier.run()
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(go())
    finally:
        applier.run_.report.close()


@dataclass(frozen=True)
class Refreshed:
    remote: Remote
    changed: list[str]  # one line per state entry the refresh changed


def refresh_command(settings: Settings) -> Refreshed:
    """`reconciler refresh`: record in the state what finished or failed remotely; submit nothing."""
    from reconciler.refresh import record_remote, refresh

    with (
        settings.backend() as backend,
        backend.lock(timeout=settings.lock_timeout, command="refresh"),
    ):
        store = backend.open()
        with novita_endpoint(settings) as endpoint:

            async def go() -> Remote:
                async with make_client(endpoint) as client:
                    return await refresh(client, store.state)

            remote = asyncio.run(go())
        changed = record_remote(store.state, remote, now_iso())
        if changed:
            store.save()
    return Refreshed(remote, changed)


def remove_from_state(settings: Settings, addresses: Iterable[str]) -> None:
    """`reconciler state rm`: forget entries in the state only (Novita and files untouched)."""
    with (
        settings.backend() as backend,
        backend.lock(timeout=settings.lock_timeout, command="state rm"),
    ):
        store = backend.open()
        missing = [a for a in addresses if a not in store.state.resources]
        if missing:
            raise ReconcilerError(f"not in the state: {', '.join(missing)}; nothing was removed")
        for addr in addresses:
            del store.state.resources[addr]
        store.save()


@dataclass(frozen=True)
class Imported:
    entry: ModelEntry
    task_status: str  # as Novita listed it


def import_training(settings: Settings, address: str, task_id: str) -> Imported:
    """`reconciler import LoraModel/NAME TASK_ID`: record an existing training as the model's current definition."""
    kind, _, name = address.partition("/")
    if kind != "LoraModel":
        raise UsageError(
            "Invalid value for 'ADDRESS': only LoraModel/NAME can be imported (Novita lists trainings only)"
        )
    desired, _ = load_desired(settings)
    model = desired.models.get(name)
    if model is None:
        raise ReconcilerError(f"{address} is not in the manifests; add it first, then import")
    with (
        settings.backend() as backend,
        backend.lock(timeout=settings.lock_timeout, command="import"),
    ):
        store = backend.open()
        with novita_endpoint(settings) as endpoint:

            async def go() -> Imported:
                async with make_client(endpoint) as client:
                    tasks = await client.list_trainings()
                listed = next((t for t in tasks if t.task_id == task_id), None)
                if listed is None:
                    raise ReconcilerError(f"no training {task_id} in the account")
                status = Status.SUCCEEDED if listed.is_done else Status.FAILED if listed.is_failed else Status.TRAINING
                entry = ModelEntry.of(
                    model,
                    status,
                    task_id=listed.task_id,
                    task_name=listed.task_name,
                    task_type=listed.task_type,
                    model_name=listed.model_name if listed.is_done else None,
                )
                return Imported(entry, listed.task_status)

            imported = asyncio.run(go())
        store.state.put(imported.entry)
        store.save()
    return imported

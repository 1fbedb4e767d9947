"""`reconciler plan` and `reconciler apply` as library functions: typed inputs in, typed results out.

Load the manifests, take the lock, read the state, talk to Novita through one client, hand the pure planner its
inputs, run the applier. What a person must see or decide in the middle of a run (the plan before approval, the
approval itself, a note about a lock taken over) goes through the `ApplyUI` the caller passes in. A saved plan
(`plan --out`, `apply FILE`) records where it was made (`plan_origin`) and is applied only there
(`saved_plan_settings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.commands.costs import estimated, refuse_unaffordable
from reconciler.commands.gallery import gallery_refresher
from reconciler.commands.outputs_sync import Synced, sync_outputs
from reconciler.commands.run import StopNotices, run_applier
from reconciler.commands.targets import EVERYTHING, Scope, resolve_scope
from reconciler.commands.workspace import (
    DEFAULT_MANIFESTS,
    Endpoint,
    Flags,
    Settings,
    default_endpoint_url,
    endpoint_url,
    load_desired,
    make_client,
    novita_endpoint,
)
from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import Desired
from reconciler.errors import ReconcilerError
from reconciler.observe.facts import Account, OrphanFacts, OutputFacts
from reconciler.plan.changes import Plan
from reconciler.plan.planfile import SIMULATOR, Origin, check_endpoint, check_fresh, load_plan, settle
from reconciler.present.progress import Reporter
from reconciler.state import State
from reconciler.state.file import describe_holder
from reconciler.urls import redact_url_password

if TYPE_CHECKING:
    from reconciler.apply import ApplyOptions, ApplyResult
    from reconciler.observe.refresh import EarlyListing
    from reconciler.outputs.store import OutputsRemote


@dataclass(frozen=True)
class Observed:
    """What a plan reads besides the manifests and the state: the outputs on disk (and in the outputs remote), the
    account (None: offline), the history and forgotten files on disk."""

    outputs: dict[str, OutputFacts]
    account: Account | None
    orphans: OrphanFacts
    outputs_remote: OutputsRemote | None


@dataclass(frozen=True)
class PlanInputs:
    """What a plan is made from: the settings, the manifests (hashed, with the cache of hashes), the state, and
    the account's endpoint (None: offline) with its training list if that was fetched early (`listed`)."""

    settings: Settings
    desired: Desired
    cache: HashCache
    state: State
    endpoint: Endpoint | None
    listed: EarlyListing | None = None


def observe_all(inputs: PlanInputs) -> Observed:
    """Observe the outputs (first: a bad outputs remote asks nobody anything), then refresh from the account
    (unless offline; with the training list `listed` early, if any)."""
    from reconciler.outputs.folders import observe, observe_orphans

    settings, state, endpoint = inputs.settings, inputs.state, inputs.endpoint
    outputs_remote = settings.outputs()
    outputs = observe(inputs.desired, state, inputs.cache, settings.root, outputs_remote)
    account = None
    if endpoint is not None:
        from reconciler.observe.refresh import refresh, settled

        tasks = inputs.listed.tasks() if inputs.listed is not None else None
        account = settled(state, tasks) if tasks is not None else None

        async def go() -> Account:
            async with make_client(endpoint) as client:
                return await refresh(client, state, tasks)

        if account is None:  # something in flight needs a status call (or the list is still to fetch)
            account = asyncio.run(go())
    orphans = observe_orphans(inputs.desired, state, inputs.cache, settings.root)
    return Observed(outputs, account, orphans, outputs_remote)


def make_plan(
    inputs: PlanInputs,
    *,
    scope: Scope = EVERYTHING,
    prune: bool = False,
    ipm: Mapping[str, int] | None = None,
) -> tuple[Plan, dict[str, OutputFacts]]:
    """Observe, look up the run cache (paid work found by its identity), and plan `scope`; the outputs seen go on
    to apply (`prune`: the plan removes the history and forgotten outputs it lists)."""
    from reconciler.observe.holdings import observe_run_cache
    from reconciler.outputs.folders import untrusted
    from reconciler.plan.planner import plan

    settings, desired, cache, state = inputs.settings, inputs.desired, inputs.cache, inputs.state
    seen = observe_all(inputs)
    held = observe_run_cache(desired, state, cache, settings.root, seen.outputs, seen.account, seen.outputs_remote)
    result = plan(
        desired,
        state,
        seen.account,
        seen.outputs,
        scope.targets,
        scope.replace,
        seen.orphans,
        prune,
        policy=settings.policy,
        run_cache=held,
    )
    result = estimated(settings, result, desired, state, inputs.endpoint, ipm)
    cache.save()
    skipped = untrusted(state, seen.outputs)
    return replace(result, warnings=(*skipped, *result.warnings)), seen.outputs


@dataclass(frozen=True)
class Planned:
    """What `plan_command` made: the plan, and the scope it was made for (the flags, resolved)."""

    plan: Plan
    scope: Scope


def _plan_inputs(
    settings: Settings, endpoint: Endpoint | None = None, listed: EarlyListing | None = None
) -> tuple[PlanInputs, Scope]:
    """The manifests (hashed), the state (read without locking it) and the targets checked against both.

    The state is read first, so that a large state's text is let go of before the images' caches are built
    (the two at once were the peak of a 50,000-photo plan); a state that cannot be read is said after the
    manifests' problems, as ever."""
    unreadable: ReconcilerError | None = None
    try:
        with settings.backend() as backend:
            state = backend.read()
    except ReconcilerError as exc:
        unreadable = exc
    desired, cache = load_desired(settings)
    if unreadable is not None:
        raise unreadable
    scope = resolve_scope(desired, state, settings.targets, settings.replace)
    return PlanInputs(settings, desired, cache, state, endpoint, listed), scope


def plan_command(settings: Settings, *, refresh: bool = True, prune: bool = False) -> Planned:
    """`reconciler plan`: what apply would do. Reads the state without locking it; changes nothing.

    The training list is fetched from the start, on a thread, while the manifests load and the images are
    hashed; errors keep their order (manifests, state, targets, then the connection's own). Not with --sim:
    the in-process simulator writes its account, so it starts only once the inputs are known to be valid."""
    if not refresh or settings.sim:
        inputs, scope = _plan_inputs(settings)
        if not refresh:
            return Planned(make_plan(inputs, scope=scope, prune=prune)[0], scope)
        with novita_endpoint(settings) as sim:
            return Planned(make_plan(replace(inputs, endpoint=sim), scope=scope, prune=prune)[0], scope)
    with contextlib.ExitStack() as stack:
        endpoint: Endpoint | None = None
        unusable: ReconcilerError | None = None  # e.g. no NOVITA_API_KEY: said after any manifest problem
        try:
            endpoint = stack.enter_context(novita_endpoint(settings))
        except ReconcilerError as exc:
            unusable = exc
        listed = None
        if endpoint is not None:
            from reconciler.observe.refresh import EarlyListing

            listed = EarlyListing(functools.partial(make_client, endpoint))
            stack.callback(listed.cancel)  # the manifests were invalid: the pages are not waited for
        inputs, scope = _plan_inputs(settings, endpoint, listed)
        if endpoint is None:
            assert unusable is not None
            raise unusable
        return Planned(make_plan(inputs, scope=scope, prune=prune)[0], scope)


def plan_origin(settings: Settings, scope: Scope) -> Origin:
    """Where a plan made with these settings (for `scope`) was made, for `plan --out` to record."""
    files = () if settings.files == [DEFAULT_MANIFESTS] else tuple(str(f) for f in settings.files)
    return Origin(
        sim=settings.sim,
        endpoint=SIMULATOR if settings.sim else endpoint_url(),
        state=redact_url_password(settings.state_location or str(settings.state_path)),
        workspace=settings.workspace,
        files=files,
        targets=scope.targets,
        replace=scope.replace,
    )


def saved_plan_settings(planfile: Path, flags: Flags) -> Settings:
    """The settings `apply PLANFILE` runs with: where the plan was made, unless the command line names the same.

    A plan file made before plans recorded their origin is applied with the command line's settings, as it always
    was.
    """
    origin = load_plan(planfile).origin
    if origin is None:
        return Settings.make(flags)
    typed = tuple(str(Path(f)) for f in flags.files)  # as plan_origin records them: `./manifests` is the default
    typed = () if typed == (str(DEFAULT_MANIFESTS),) else typed
    state = flags.state
    state = None if state is None else str(Path(state)) if "://" not in state else state
    sim = flags.sim or None  # a plain flag: given only when True
    sim_, state_, files_ = settle(origin, planfile, sim=sim, state=state, files=typed)
    chosen = flags.workspace if flags.workspace is not None else origin.workspace
    settings = Settings.make(replace(flags, files=files_, state=state_, sim=sim_, workspace=chosen))
    check_endpoint(origin, planfile, SIMULATOR if sim_ else endpoint_url(), settings.workspace, default_endpoint_url())
    return settings


class ApplyUI(StopNotices, Protocol):
    """What `apply_command` needs from whoever runs it (the CLI, a test)."""

    def show_plan(self, plan: Plan) -> None:
        """The plan about to be applied (a saved plan too, before it is applied without a question)."""

    def confirm(self, plan: Plan) -> bool:
        """Approval to apply `plan`; False cancels with nothing changed."""

    def reporter(self) -> Reporter:
        """Where the applier's events go (created once, when applying starts)."""


@dataclass(frozen=True)
class ApplyOutcome:
    plan: Plan
    result: ApplyResult | None = None  # None: nothing to apply, or cancelled
    cancelled: bool = False
    synced: Synced | None = None  # the free copies to and from the outputs remote, when there were any


def apply_command(
    settings: Settings,
    options: ApplyOptions,
    ui: ApplyUI,
    *,
    planfile: Path | None = None,
    gallery: bool = False,
) -> ApplyOutcome:
    """`reconciler apply`: plan (or load a saved plan and check it is fresh), confirm, apply."""
    from reconciler.apply import Applier, Run
    from reconciler.outputs.folders import observe

    desired, cache = load_desired(settings)
    with settings.locked("apply") as (backend, lock):
        if lock.took_over:
            ui.notice(
                f"Note: the previous apply ({describe_holder(lock.took_over)}) ended without releasing the lock "
                "(killed?); it no longer runs, so this apply takes over and resumes its work."
            )
        store = backend.open()
        scope = resolve_scope(desired, store.state, settings.targets, settings.replace)
        saved = load_plan(planfile) if planfile is not None else None
        if saved is not None and planfile is not None:  # a stale plan is refused before any connection
            check_fresh(
                saved, planfile, serial=store.state.serial, lineage=store.state.lineage, desired_digest=desired.digest()
            )
        with novita_endpoint(settings) as endpoint:
            if saved is not None:
                the_plan = estimated(settings, saved.plan, desired, store.state, endpoint, options.ipm)
                ui.show_plan(the_plan)
                refuse_unaffordable(the_plan)
                outputs = observe(desired, store.state, cache, settings.root, settings.outputs())
            else:
                inputs = PlanInputs(settings, desired, cache, store.state, endpoint)
                the_plan, outputs = make_plan(inputs, scope=scope, prune=options.prune, ipm=options.ipm)
                ui.show_plan(the_plan)
                if the_plan.empty:
                    return ApplyOutcome(the_plan, synced=sync_outputs(settings, the_plan, store.state))
                refuse_unaffordable(the_plan)
                if not ui.confirm(the_plan):
                    return ApplyOutcome(the_plan, cancelled=True)
            if the_plan.empty:
                return ApplyOutcome(the_plan, synced=sync_outputs(settings, the_plan, store.state))
            client, reporter = make_client(endpoint), ui.reporter()
            run = Run(desired, store, client, reporter, options, settings.root, outputs, settings.outputs())
            applier = Applier(the_plan, run, finishing=gallery_refresher(settings, cache) if gallery else None)
            result = run_applier(applier, client, reporter, ui)
            synced = sync_outputs(settings, the_plan, store.state) if not result.interrupted else None
            return ApplyOutcome(the_plan, result, synced=synced)

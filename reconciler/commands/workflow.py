"""The commands as library functions: typed inputs in, typed results out; the CLI only parses, prints, exits.

Each function here is one command's workflow (plan, apply, refresh, import, state rm): load the manifests,
take the lock, read the state, talk to Novita through one client, hand the pure parts their inputs. What a
person must see or decide in the middle of a run (the plan before approval, the approval itself, a note
about a lock taken over) goes through the `ApplyUI` the caller passes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.commands.workspace import (
    DEFAULT_MANIFESTS,
    Endpoint,
    Settings,
    endpoint_url,
    load_desired,
    make_client,
    novita_endpoint,
)
from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import Desired
from reconciler.errors import ConfigError, ReconcilerError, UsageError
from reconciler.files import display_path
from reconciler.observe.facts import Account, OutputFacts
from reconciler.plan.planfile import SIMULATOR, Origin, check_endpoint, check_fresh, load_plan, settle
from reconciler.plan.planner import Plan
from reconciler.present.progress import Reporter
from reconciler.state import GenerationEntry, ModelEntry, State, describe_holder, now_iso
from reconciler.status import Status
from reconciler.text import plural
from reconciler.urls import redact_url_password

if TYPE_CHECKING:
    from reconciler.apply import Applier, ApplyOptions, ApplyResult
    from reconciler.observe.refresh import EarlyListing
    from reconciler.present.gallery import GalleryResult

GALLERY_FOLDER = "gallery"


def check_targets(desired: Desired, state: State, targets: Iterable[str], option: str = "--target") -> list[str]:
    """The addresses given on the command line, each naming a resource of the manifests or the state.

    A bare name (`alice-v1`) stands for the one resource of that name, whatever its kind; a name that several
    kinds share, or an address that names nothing, is a usage error that says what was meant. A matrix's address
    (`Generation/alice-grid`) stands for all its members; a member's axes may be given in any order.
    """
    from reconciler.desired.resources import matrix_address
    from reconciler.load.matrix import normalise_address

    names = set(desired.addresses()) | set(state.resources) | set(desired.matrices())
    names |= {m for m in map(matrix_address, state.resources) if m is not None}
    known = sorted(names)
    by_name: dict[str, list[str]] = {}
    for addr in known:
        by_name.setdefault(addr.partition("/")[2], []).append(addr)
    resolved: list[str] = []
    problems: list[str] = []
    for given in targets:
        if normalise_address(given) in names:
            resolved.append(normalise_address(given))
        elif "/" not in given and len(by_name.get(given, [])) == 1:
            resolved.append(by_name[given][0])
        elif "/" not in given and given in by_name:
            problems.append(f"{given} is the name of {' and '.join(by_name[given])}; give the address")
        else:
            near = difflib.get_close_matches(given, known, n=1) or difflib.get_close_matches(given, list(by_name), n=1)
            meant = (
                (by_name[near[0]][0] if near[0] in by_name and len(by_name[near[0]]) == 1 else near[0]) if near else ""
            )
            problems.append(f"no such resource: {given}" + (f" (did you mean {meant}?)" if meant else ""))
    if problems:
        raise UsageError(f"Invalid value for '{option}': " + "; ".join(problems))
    return resolved


def make_plan(
    settings: Settings,
    desired: Desired,
    cache: HashCache,
    state: State,
    endpoint: Endpoint | None,
    listed: EarlyListing | None = None,
    *,
    prune: bool = False,
) -> tuple[Plan, dict[str, OutputFacts]]:
    """Refresh (unless offline; with the training list `listed` early, if any), observe the outputs, and plan;
    the outputs seen go on to apply (`prune`: the plan removes the history and forgotten outputs it lists)."""
    from reconciler.observe.holdings import observe_run_cache
    from reconciler.outputs.folders import observe, observe_orphans
    from reconciler.plan.planner import plan

    outputs_remote = settings.outputs()
    outputs = observe(desired, state, cache, settings.root, outputs_remote)  # first: a bad remote asks nobody
    remote = None
    if endpoint is not None:
        from reconciler.observe.refresh import refresh, settled

        tasks = listed.tasks() if listed is not None else None
        remote = settled(state, tasks) if tasks is not None else None

        async def go() -> Account:
            async with make_client(endpoint) as client:
                return await refresh(client, state, tasks)

        if remote is None:  # something in flight needs a status call (or the list is still to fetch)
            remote = asyncio.run(go())
    orphans = observe_orphans(desired, state, cache, settings.root)
    held = observe_run_cache(desired, state, cache, settings.root, outputs, remote, outputs_remote)
    result = plan(
        desired,
        state,
        remote,
        outputs,
        settings.targets,
        settings.replace,
        orphans,
        prune,
        policy=settings.policy,
        run_cache=held,
    )
    cache.save()
    return result, outputs


def _plan_inputs(settings: Settings) -> tuple[Desired, HashCache, State]:
    """The manifests (hashed), the state (read without locking it) and the targets checked against both."""
    desired, cache = load_desired(settings)
    with settings.backend() as backend:
        state = backend.read()
    settings.targets = check_targets(desired, state, settings.targets)
    settings.replace = check_targets(desired, state, settings.replace, "--replace")
    return desired, cache, state


def plan_command(settings: Settings, *, refresh: bool = True, prune: bool = False) -> Plan:
    """`reconciler plan`: what apply would do. Reads the state without locking it; changes nothing.

    The training list is fetched from the start, on a thread, while the manifests load and the images are
    hashed; errors keep their order (manifests, state, targets, then the connection's own). Not with --sim:
    the in-process simulator writes its account, so it starts only once the inputs are known to be valid."""
    if not refresh or settings.sim:
        desired, cache, state = _plan_inputs(settings)
        if not refresh:
            return make_plan(settings, desired, cache, state, None, prune=prune)[0]
        with novita_endpoint(settings) as sim:
            return make_plan(settings, desired, cache, state, sim, prune=prune)[0]
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
        desired, cache, state = _plan_inputs(settings)
        if endpoint is None:
            assert unusable is not None
            raise unusable
        return make_plan(settings, desired, cache, state, endpoint, listed, prune=prune)[0]


def plan_origin(settings: Settings) -> Origin:
    """Where a plan made with these settings was made, for `plan --out` to record."""
    files = () if settings.files == [DEFAULT_MANIFESTS] else tuple(str(f) for f in settings.files)
    return Origin(
        sim=settings.sim,
        endpoint=SIMULATOR if settings.sim else endpoint_url(),
        state=redact_url_password(settings.state_location or str(settings.state_path)),
        workspace=settings.workspace,
        files=files,
        targets=tuple(settings.targets),
        replace=tuple(settings.replace),
    )


def saved_plan_settings(
    planfile: Path,
    *,
    sim: bool | None,
    state: str | None,
    files: tuple[str, ...],
    lock_timeout: float,
    workspace: str | None = None,
) -> Settings:
    """The settings `apply PLANFILE` runs with: where the plan was made, unless the command line names the same.

    `sim`, `state` and `workspace` are None when not given on the command line. A plan file made before plans
    recorded their origin is applied with the command line's settings, as it always was.
    """
    origin = load_plan(planfile).origin
    if origin is None:
        return Settings.make(files, state, bool(sim), lock_timeout, workspace=workspace)
    typed = tuple(str(Path(f)) for f in files)  # as plan_origin records them: `./manifests` is the default
    typed = () if typed == (str(DEFAULT_MANIFESTS),) else typed
    state = None if state is None else str(Path(state)) if "://" not in state else state
    sim_, state_, files_ = settle(origin, planfile, sim=sim, state=state, files=typed)
    chosen = workspace if workspace is not None else origin.workspace
    settings = Settings.make(files_, state_, sim_, lock_timeout, workspace=chosen)
    check_endpoint(origin, planfile, SIMULATOR if sim_ else endpoint_url(), settings.workspace)
    return settings


class ApplyUI(Protocol):
    """What `apply_command` needs from whoever runs it (the CLI, a test)."""

    def notice(self, text: str) -> None:
        """A note for the person running apply (e.g. a lock taken over from a killed apply)."""

    def show_plan(self, plan: Plan) -> None:
        """The plan about to be applied (a saved plan too, before it is applied without a question)."""

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
    synced: Synced | None = None  # the free copies to and from the outputs remote, when there were any


def gallery_folder(settings: Settings) -> Path:
    """Where the gallery is written: `gallery/` in the project folder."""
    return settings.root / GALLERY_FOLDER


def gallery_command(settings: Settings, out: Path | None = None) -> GalleryResult:
    """`reconciler gallery`: write the static gallery of the outputs the state records. Changes no state."""
    from reconciler.present.gallery import build_gallery

    with settings.backend() as backend:
        state = backend.read()
    if not state.serial:
        where = redact_url_password(settings.state_url or display_path(settings.state_path, settings.root))
        hint = "" if settings.sim else " (after `apply --sim`, add --sim: its state is state/sim.json)"
        raise ReconcilerError(f"no state at {where}: nothing was applied yet{hint}")
    return build_gallery(settings.root, state, out or gallery_folder(settings), HashCache(settings.cache_file))


def apply_command(
    settings: Settings,
    options: ApplyOptions,
    ui: ApplyUI,
    *,
    planfile: Path | None = None,
    gallery: bool = False,
) -> ApplyOutcome:
    """`reconciler apply`: plan (or load a saved plan and check it is fresh), confirm, apply."""
    from reconciler.apply import Applier
    from reconciler.outputs.folders import observe

    desired, cache = load_desired(settings)
    with settings.locked("apply") as (backend, lock):
        if lock.took_over:
            ui.notice(
                f"Note: the previous apply ({describe_holder(lock.took_over)}) ended without releasing the lock "
                "(killed?); it no longer runs, so this apply takes over and resumes its work."
            )
        store = backend.open()
        settings.targets = check_targets(desired, store.state, settings.targets)
        settings.replace = check_targets(desired, store.state, settings.replace, "--replace")
        saved = load_plan(planfile) if planfile is not None else None
        if saved is not None and planfile is not None:  # a stale plan is refused before any connection
            check_fresh(
                saved, planfile, serial=store.state.serial, lineage=store.state.lineage, desired_digest=desired.digest()
            )
        with novita_endpoint(settings) as endpoint:
            if saved is not None:
                the_plan = saved.plan
                ui.show_plan(the_plan)
                outputs = observe(desired, store.state, cache, settings.root, settings.outputs())
            else:
                the_plan, outputs = make_plan(settings, desired, cache, store.state, endpoint, prune=options.prune)
                ui.show_plan(the_plan)
                if the_plan.empty:
                    return ApplyOutcome(the_plan, synced=sync_outputs(settings, the_plan, store.state))
                if not ui.confirm(the_plan):
                    return ApplyOutcome(the_plan, cancelled=True)
            if the_plan.empty:
                return ApplyOutcome(the_plan, synced=sync_outputs(settings, the_plan, store.state))
            remote = settings.outputs()
            client = make_client(endpoint)
            applier = Applier(
                the_plan,
                desired,
                store,
                client,
                ui.reporter(),
                options,
                settings.root,
                outputs,
                remote,
                finishing=_gallery_refresher(settings, cache) if gallery else None,
            )
            result = _run(applier, ui)
            synced = sync_outputs(settings, the_plan, store.state) if not result.interrupted else None
            return ApplyOutcome(the_plan, result, synced=synced)


@dataclass(frozen=True)
class Synced:
    """Copies between the output folders and the outputs remote: nothing generated, nothing paid."""

    remote: str  # the remote's URL as shown
    fetched: int = 0  # images written here from the remote
    stored: int = 0  # images stored in the remote from here

    def describe(self) -> str:
        done = []
        if self.fetched:
            done.append(f"fetched {plural(self.fetched, 'image')} from")
        if self.stored:
            done.append(f"stored {plural(self.stored, 'image')} in")
        if not done:
            return f"The output folders and the outputs remote {self.remote} already match."
        text = " and ".join(done) + f" the outputs remote {self.remote}."
        return text[0].upper() + text[1:]


def sync_outputs(settings: Settings, plan: Plan, state: State) -> Synced | None:
    """The plan's free copies: images the remote holds that are missing here, and the other way round."""
    remote = settings.outputs()
    if remote is None or not (plan.fetches or plan.stores):
        return None
    fetched = stored = 0
    for address, _ in plan.fetches:
        entry = state.entry(address)
        if isinstance(entry, GenerationEntry) and entry.status == Status.SUCCEEDED:
            fetched += remote.pull_run(entry, settings.root)
    for address, _ in plan.stores:
        entry = state.entry(address)
        if isinstance(entry, GenerationEntry) and entry.status == Status.SUCCEEDED:
            stored += remote.push_run(entry, settings.root)
    return Synced(remote.shown, fetched, stored)


@dataclass(frozen=True)
class Pulled:
    remote: str
    fetched: dict[str, int]  # address -> images written
    present: int  # images that were already here, intact
    missing: list[str]  # addresses whose images the remote does not hold


def pull_command(settings: Settings) -> Pulled:
    """`reconciler pull`: write every image the state records and the outputs remote holds into its output
    folder, hash-checked; the state is read, not locked, and never changed."""
    from reconciler.desired.hashing import HashCache

    remote = settings.outputs()
    if remote is None:
        raise ConfigError(
            "no outputs remote to pull from: set outputs.remote in reconciler.yaml or RECONCILER_OUTPUTS_REMOTE "
            "(e.g. s3://bucket/prefix)"
        )
    with settings.backend() as backend:
        state = backend.read()
    index = remote.index()
    cache = HashCache(settings.cache_file)
    fetched: dict[str, int] = {}
    present = 0
    missing: list[str] = []
    for entry in sorted(state.generations(), key=lambda e: e.name):
        if entry.status != Status.SUCCEEDED or not entry.files:
            continue
        if (entry.name, entry.identity) not in index.sidecars or any(f.sha256 not in index.hashes for f in entry.files):
            missing.append(entry.address)
            continue
        wrote = remote.pull_run(entry, settings.root, cache)
        present += len(entry.files) - wrote
        if wrote:
            fetched[entry.address] = wrote
    cache.save()
    return Pulled(remote.shown, fetched, present, missing)


def _gallery_refresher(settings: Settings, cache: HashCache) -> Callable[[ApplyResult, State], str | None]:
    """What apply runs last: refresh the gallery when it wrote, moved, adopted, forgot or removed images."""

    def refresh(result: ApplyResult, state: State) -> str | None:
        from reconciler.present.gallery import build_gallery

        if not (result.images or result.adopted or result.pruned or result.moved_to_history or result.forgotten):
            return None
        try:
            return build_gallery(settings.root, state, gallery_folder(settings), cache).summary()
        except OSError as exc:  # the images are safe and recorded; only the view is stale
            return f"Gallery: not refreshed ({exc}); run `reconciler gallery` to try again."

    return refresh


def _run(applier: Applier, ui: ApplyUI) -> ApplyResult:
    """Run the applier on an event loop. The first Ctrl-C (or SIGTERM) stops submitting and waiting at once, lets
    a create on the wire get its answer, saves the state; a second one does not wait for those creates either.
    The handlers stay until the state is saved, so no Ctrl-C can cut the final save."""

    async def go() -> ApplyResult:
        async with applier.run_.client:
            loop = asyncio.get_running_loop()
            signals = 0

            def on_signal() -> None:
                nonlocal signals
                signals += 1
                if signals == 1:
                    ui.interrupted()
                elif signals == 2:
                    ui.notice("Stopping now (submits on the wire are not waited for; they stay recorded); saving…")
                else:
                    ui.notice("Saving the state; it takes a moment.")
                applier.interrupt()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            try:
                return await applier.run()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    try:
        return asyncio.run(go())
    finally:
        applier.run_.report.close()


@dataclass(frozen=True)
class Refreshed:
    remote: Account
    changed: list[str]  # one line per state entry the refresh changed


def refresh_command(settings: Settings) -> Refreshed:
    """`reconciler refresh`: record in the state what finished or failed remotely; submit nothing."""
    from reconciler.observe.refresh import record_remote, refresh

    with settings.locked("refresh") as (backend, _):
        store = backend.open()
        with novita_endpoint(settings) as endpoint:

            async def go() -> Account:
                async with make_client(endpoint) as client:
                    return await refresh(client, store.state)

            remote = asyncio.run(go())
        changed = record_remote(store.state, remote, now_iso())
        if changed:
            store.save()
    return Refreshed(remote, changed)


def remove_from_state(settings: Settings, addresses: Iterable[str]) -> None:
    """`reconciler state rm`: forget entries in the state only (Novita and files untouched)."""
    with settings.locked("state rm") as (backend, _):
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
    with settings.locked("import") as (backend, _):
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

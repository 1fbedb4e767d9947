"""The free copies between the output folders and the outputs remote: apply's sync, and `reconciler pull`.

Nothing here generates or pays: images the state records are copied, hash-checked, where they are missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.commands.workspace import Settings
from reconciler.desired.hashing import HashCache
from reconciler.errors import ConfigError, StateError
from reconciler.observe.facts import SkippedRecord
from reconciler.outputs.guard import UnsafePath
from reconciler.plan.changes import Plan
from reconciler.state import GenerationEntry, State
from reconciler.status import Status


@dataclass(frozen=True)
class Synced:
    """Copies between the output folders and the outputs remote: nothing generated, nothing paid."""

    remote: str  # the remote's URL as shown
    fetched: int = 0  # images written here from the remote
    stored: int = 0  # images stored in the remote from here


def sync_outputs(settings: Settings, plan: Plan, state: State) -> Synced | None:
    """The plan's free copies: images the remote holds that are missing here, and the other way round."""
    remote = settings.outputs()
    if remote is None or not (plan.fetches or plan.stores):
        return None
    fetched = stored = 0
    for address, _ in plan.fetches:
        entry = state.entry(address)
        if isinstance(entry, GenerationEntry) and entry.status == Status.SUCCEEDED:
            try:
                fetched += remote.pull_run(entry, settings.root)
            except UnsafePath as exc:  # the state names a folder no image may be written in
                raise StateError(f"the state's entry {address} (output): {exc.problem}; nothing was written") from None
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
    warnings: list[SkippedRecord]  # the state's entries that failed a check: not pulled


def pull_command(settings: Settings) -> Pulled:
    """`reconciler pull`: write every image the state records and the outputs remote holds into its output
    folder, hash-checked; the state is read, not locked, and never changed."""
    from reconciler.outputs.folders import untrusted

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
    warnings = untrusted(state, {})
    for entry in sorted(state.generations(), key=lambda e: e.name):
        if entry.status != Status.SUCCEEDED or not entry.files:
            continue
        if (entry.name, entry.identity) not in index.sidecars or any(f.sha256 not in index.hashes for f in entry.files):
            missing.append(entry.address)
            continue
        try:
            wrote = remote.pull_run(entry, settings.root, cache)
        except UnsafePath as exc:  # the state names a folder no image may be written in
            warnings.append(SkippedRecord(f"the state's entry {entry.address} (output)", exc.problem, entry.address))
            continue
        present += len(entry.files) - wrote
        if wrote:
            fetched[entry.address] = wrote
    cache.save()
    return Pulled(remote.shown, fetched, present, missing, warnings)

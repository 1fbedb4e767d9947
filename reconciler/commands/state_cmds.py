"""The state commands as library functions: refresh, import, state rm; pull a version, push a file, migrate
between backends, history, unlock.

Each goes through the backend seam only (`Settings.backend()`, `open_backend`), so it works the same on a state
file and on PostgreSQL. Refresh, import and rm are one-step edits: the lock held, the state read, changed, saved.
A push or a migration that could lose work (another lineage, a lower serial, a destination that already holds a
state) is refused unless forced, and a migration reads the copy back and compares it with the source before it
reports success.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.commands.workspace import Settings, load_desired, make_client, novita_endpoint
from reconciler.errors import ReconcilerError, StateError, UsageError
from reconciler.observe.facts import Account
from reconciler.state import ModelEntry, State, now_iso, parse_state
from reconciler.state.backend import Backend, Version, open_backend
from reconciler.state.journal import SUFFIX as JOURNAL_SUFFIX
from reconciler.state.journal import read_journal, replay
from reconciler.status import Status, training_status
from reconciler.text import plural


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
        skipped = {s.address for s in store.state.skipped}  # held, but failed a check: not written back
        missing = [a for a in addresses if a not in store.state.resources and a not in skipped]
        if missing:
            raise ReconcilerError(f"not in the state: {', '.join(missing)}; nothing was removed")
        for addr in addresses:
            store.state.resources.pop(addr, None)
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
                status = training_status(listed.task_status, (m.model_status for m in listed.models))
                entry = ModelEntry.of(
                    model,
                    status,
                    task_id=listed.task_id,
                    task_name=listed.task_name,
                    task_type=listed.task_type,
                    model_name=listed.model_name if status == Status.SUCCEEDED else None,
                )
                return Imported(entry, listed.task_status)

            imported = asyncio.run(go())
        store.state.put(imported.entry)
        store.save()
    return imported


def pull_state(settings: Settings, serial: int | None = None) -> State:
    """`reconciler state pull`: the current state, or a kept earlier version."""
    with settings.backend() as backend:
        return backend.read(serial)


def state_history(settings: Settings) -> tuple[str, list[Version]]:
    with settings.backend() as backend:
        return backend.display, backend.history()


def read_state_file(source: str) -> State:
    """A state document from a file, or from standard input for `-`."""
    if source == "-":
        return parse_state(sys.stdin.buffer.read(), "<stdin>")
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise StateError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    return parse_state(raw, source)


@dataclass(frozen=True)
class Pushed:
    target: str
    serial: int
    unchanged: bool = False
    recorded: list[str] | None = None  # a journal pushed: the addresses whose paid task it recorded


def push_state(settings: Settings, source: str, *, force: bool = False) -> Pushed:
    """`reconciler state push FILE`: replace the state with FILE, like Terraform's: refused on another lineage
    or a lower serial (or the same serial with other content) unless `force`. A journal (`*.jsonl`) is replayed
    into the state instead (see reconciler.state.journal)."""
    if source.endswith(JOURNAL_SUFFIX):
        return push_journal(settings, Path(source), force=force)
    new = read_state_file(source)
    if new.skipped:
        first, more = new.skipped[0], len(new.skipped) - 1
        others = f" ({more} more {'entry fails' if more == 1 else 'entries fail'} a check)" if more else ""
        raise StateError(
            f"{source}: the state's entry {first.address} ({first.field}): {first.problem}{others}. Nothing was "
            f"pushed: fix the entry or remove it from {source} (a state is never written with an entry a plan "
            "would not trust)."
        )
    with settings.locked("state push") as (backend, _):
        current = backend.read()
        if current.serial and not force:
            if new.lineage != current.lineage:
                raise StateError(
                    f"{source} has lineage {new.lineage}, but {backend.display} has lineage {current.lineage}: "
                    "they are different states. Nothing was pushed (--force replaces it anyway)."
                )
            if new.serial < current.serial:
                raise StateError(
                    f"{source} has serial {new.serial}, older than {backend.display} (serial {current.serial}): "
                    "pushing it would lose what happened since. Nothing was pushed (--force replaces it anyway)."
                )
            if new.serial == current.serial:
                if _same(new, current):
                    return Pushed(backend.display, current.serial, unchanged=True)
                raise StateError(
                    f"{source} has the same serial {new.serial} as {backend.display} but other content. "
                    "Nothing was pushed (--force replaces it anyway)."
                )
        new.serial = max(new.serial, current.serial + 1) if current.serial else max(new.serial, 1)
        backend.replace(new)
        return Pushed(backend.display, new.serial)


def push_journal(settings: Settings, source: Path, *, force: bool = False) -> Pushed:
    """`reconciler state push JOURNAL`: record the paid tasks of a journal carried from another machine. Refused
    when it was written for another lineage or a newer serial, unless `force`."""
    records = read_journal(source)
    with settings.locked("state push") as (backend, _):
        store = backend.open()
        recorded = replay(store.state, records, source, backend.display, force=force)
        if recorded:
            store.save()
        return Pushed(backend.display, store.state.serial, unchanged=not recorded, recorded=recorded)


@dataclass(frozen=True)
class Migrated:
    source: str
    target: str
    serial: int
    lineage: str
    resources: int
    images: int


def migrate_state(settings: Settings, to: str, workspace: str | None = None, *, force: bool = False) -> Migrated:
    """`reconciler state migrate --to URL`: copy the state to another backend (file ↔ PostgreSQL), holding
    both locks, then read the copy back and check it equals the source."""
    with settings.backend() as source:
        target = open_backend(to, workspace or settings.workspace, "--to")
        with target:
            if target.display == source.display:
                raise ReconcilerError(f"--to {target.display}: that is where the state already is")
            with (
                source.lock(timeout=settings.lock_timeout, command="state migrate"),
                target.lock(timeout=settings.lock_timeout, command="state migrate"),
            ):
                return _copy(source, target, force)


def _copy(source: Backend, target: Backend, force: bool) -> Migrated:
    state = source.read()
    if not state.serial:
        raise StateError(f"{source.display} holds no state yet: nothing to migrate")
    existing = target.read()
    if existing.serial and not force:
        raise StateError(
            f"{target.display} already holds a state (serial {existing.serial}, lineage {existing.lineage}); "
            "nothing was copied (--force replaces it)."
        )
    copy = state.model_copy(deep=True)
    if existing.serial >= copy.serial:
        copy.serial = existing.serial + 1
    target.replace(copy)
    back = target.read()
    if not _same(back, state) or back.lineage != state.lineage:
        raise StateError(
            f"the copy in {target.display} does not read back equal to {source.display}; "
            "keep using the source and report this as a bug."
        )
    return Migrated(source.display, target.display, back.serial, back.lineage, len(back.resources), len(back.images))


def _same(a: State, b: State) -> bool:
    """Equal content, whatever the serial."""
    return _content(a) == _content(b)


def _content(state: State) -> dict[str, Any]:
    return state.model_dump(mode="json", exclude={"serial"})


def describe_migration(m: Migrated) -> str:
    return (
        f"Copied the state (serial {m.serial}, lineage {m.lineage}: {plural(m.resources, 'resource')}, "
        f"{plural(m.images, 'image')}) from {m.source} to {m.target}, and read it back: identical."
    )


def lock_holder(settings: Settings) -> dict[str, Any] | None:
    with settings.backend() as backend:
        return backend.holder()


def force_unlock_state(settings: Settings) -> dict[str, Any] | None:
    """`reconciler force-unlock`: clear a stale lock; refused while a live process holds it."""
    with settings.backend() as backend:
        return backend.force_unlock()

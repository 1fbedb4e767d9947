"""The local journal: every paid task id, on this machine's disk, before it counts.

A command that changes the state writes, before each commit, one line per training or generation whose task id
(or outcome) is new since the last commit: the entry as the state will hold it, with the lineage and serial of
the last version this command saved. Each line is appended and fsynced before the commit is written, so a task
id Novita returned is never known only to a process about to die (a database gone for longer than the
reconnect window, a SIGKILL, a lost machine's disk aside). The journal of a command that ends with every commit
written is removed; otherwise it stays, and the next command that reads the state replays it:

- `<state folder>/journal/<state>-<workspace>.<when>-<pid>.jsonl`, one file per command, locked (flock) by the
  command writing it; no secret is in it (only what the state itself holds).
- `read` replays every journal into the state it returns; `open` (a command holding the lock) also commits the
  replayed state, then removes the journals whose writer has ended.
- A journal written for another lineage, or for a serial newer than the state's, is refused with what to do.
- Replaying puts a journaled entry where the state holds nothing for its address, the same task with less
  known, or the same definition still waiting for its submit's answer; an entry the state has moved past
  (another task, another definition) is left as the state holds it. Replaying twice changes nothing.

`reconciler state push JOURNAL` replays a journal carried from another machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import StateError
from reconciler.files import fsync_dir
from reconciler.state.backend import Backend, Lock, Store, Version
from reconciler.state.model import GenerationEntry, ModelEntry, State, parse_entry
from reconciler.state.reconnect import StateLost
from reconciler.status import SUBMIT_UNRESOLVED, Status

FOLDER = "journal"
SUFFIX = ".jsonl"
TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED})


def journal_folder(state_path: Path) -> Path:
    """Where the journals of a state go: `journal/` beside its file (or beside the local caches of a database)."""
    return state_path.parent / FOLDER


@dataclass(frozen=True)
class Record:
    """One journal line: a paid task's entry, and the version of the state its command had saved last."""

    lineage: str
    serial: int
    entry: ModelEntry | GenerationEntry

    def line(self) -> bytes:
        data = {"lineage": self.lineage, "serial": self.serial, "entry": self.entry.model_dump(mode="json")}
        return (json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n").encode()


def read_journal(path: Path) -> list[Record]:
    """The records of a journal; a last line cut by a kill is ignored, any other bad line refused."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StateError(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    lines = raw.split(b"\n")
    records: list[Record] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            entry = parse_entry(data["entry"])
            if not isinstance(entry, ModelEntry | GenerationEntry):
                raise ValueError(f"a {entry.kind} entry")
            records.append(Record(str(data["lineage"]), int(data["serial"]), entry))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):  # no newline after it: the append a kill cut
                break
            raise StateError(
                f"{path}:{number}: not a journal line ({exc}); the journal holds paid task ids: keep the file, and "
                "record them with `reconciler state push` after fixing the line"
            ) from None
    return records


@dataclass
class Replayed:
    """What replaying journals did to a state."""

    journals: list[Path] = field(default_factory=list)
    put: list[str] = field(default_factory=list)  # addresses whose entry came from a journal


def replay(state: State, records: list[Record], source: Path, display: str, *, force: bool = False) -> list[str]:
    """Put the journaled entries the state lacks into `state` (in memory); returns their addresses. Refused when
    the journal belongs to another lineage, or to a serial newer than the state's (unless `force`)."""
    if not records:
        return []
    newest = max(r.serial for r in records)
    lineage = records[-1].lineage
    if not force and (state.lineage != lineage or state.serial < newest):
        what = "another state" if state.lineage != lineage else "a newer version of this state"
        raise StateError(
            f"{source}: this journal of paid task ids was written for {what} (lineage {lineage}, serial {newest}) "
            f"than {display} holds (lineage {state.lineage}, serial {state.serial}); nothing was replayed. If the "
            f"state was restored or moved, point --state/--workspace at the one it belongs to; to record its tasks "
            f"here anyway, run `reconciler state push {source} --force`. Keep the file until its tasks are recorded."
        )
    put: list[str] = []
    for record in records:
        entry = record.entry
        if _takes(state.entry(entry.address), entry):
            state.put(entry.model_copy(deep=True))
            put.append(entry.address)
    return sorted(set(put))


def _takes(held: object, entry: ModelEntry | GenerationEntry) -> bool:
    if held is None:
        return True
    if not isinstance(held, ModelEntry | GenerationEntry) or held.kind != entry.kind:
        return False
    if held.task_id == entry.task_id:
        return held.status not in TERMINAL and entry.status in TERMINAL  # the same task, its outcome known here
    return held.identity == entry.identity and (held.task_id is None or held.status in SUBMIT_UNRESOLVED)


class JournalWriter:
    """The journal of one command: created at its first paid task id, appended and fsynced before each commit."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.path = folder / f"{prefix}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}{SUFFIX}"
        self._fd: int | None = None
        self._noted: dict[str, tuple[str | None, str]] = {}  # address -> (task id, status) last journaled or read

    def known(self, state: State) -> None:
        """What the state already holds needs no line."""
        self._noted = {e.address: (e.task_id, e.status) for e in _paid(state)}

    def note(self, state: State, saved: tuple[str, int]) -> int:
        """Append (and fsync) every paid task id or outcome the state holds that is not journaled yet; how many."""
        lines = []
        for entry in _paid(state):
            mark = (entry.task_id, str(entry.status))
            if self._noted.get(entry.address) != mark:
                lines.append(Record(saved[0], saved[1], entry).line())
                self._noted[entry.address] = mark
        if lines:
            self._append(b"".join(lines))
        return len(lines)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            fsync_dir(self.folder)
        os.write(self._fd, data)
        os.fsync(self._fd)

    @property
    def written(self) -> bool:
        return self._fd is not None

    def close(self, *, keep: bool) -> None:
        """Remove the journal when every line reached the state (`keep` False), else leave it for the next command."""
        if self._fd is None:
            return
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _paid(state: State) -> list[ModelEntry | GenerationEntry]:
    return [e for e in state.resources.values() if isinstance(e, ModelEntry | GenerationEntry) and e.task_id]


def _ended(path: Path) -> bool:
    """True when the command that wrote `path` has ended (nobody holds its flock)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the flock
    return True


class JournaledStore:
    """A backend's store that journals every paid task id before the commit that records it."""

    def __init__(self, inner: Store, writer: JournalWriter) -> None:
        self.inner = inner
        self.writer = writer
        self.failed = False  # a write failed: the journal may hold what the state does not
        self.journaled = 0  # lines this store appended
        self.recorded = 0  # of them, those a written commit holds
        self._saved = (inner.state.lineage, inner.state.serial)

    @property
    def state(self) -> State:
        return self.inner.state

    @state.setter
    def state(self, value: State) -> None:
        self.inner.state = value

    def journal(self) -> None:
        """Journal the paid task ids the state holds now, at once (before a commit waits for its turn)."""
        self.journaled += self.writer.note(self.inner.state, self._saved)

    def prepare(self) -> tuple[int, Any]:
        self.journal()
        return self.journaled, self.inner.prepare()  # every line so far is in the version prepared

    def write(self, change: tuple[int, Any]) -> None:
        covered, inner = change
        try:
            self.inner.write(inner)
        except StateLost as exc:
            self.failed = True
            kept = (
                f"its paid task ids are kept in the journal {self.writer.path}"
                if self.writer.written
                else ("it paid for nothing the state does not hold")
            )
            raise StateLost(f"{exc}; {kept}; the next command replays it into the state") from exc
        except BaseException:
            self.failed = True
            raise
        self._saved = (self.inner.state.lineage, self.inner.state.serial)
        self.recorded = max(self.recorded, covered)

    @property
    def unsaved(self) -> bool:
        """Lines were journaled that no written commit holds yet."""
        return self.journaled > self.recorded

    def save(self) -> None:
        self.write(self.prepare())

    def listen(self, notify: Callable[..., None]) -> None:
        listen = getattr(self.inner, "listen", None)
        if listen is not None:
            listen(notify)


class JournaledBackend:
    """Any backend, with the journals of its state: replayed when read, written by the commands that commit."""

    def __init__(self, inner: Backend, folder: Path, prefix: str) -> None:
        self.inner = inner
        self.folder = folder
        self.prefix = prefix
        self.display = inner.display
        self.workspace = inner.workspace
        self.replayed = Replayed()
        self._stores: list[JournaledStore] = []

    def journals(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.prefix}.*{SUFFIX}"))

    def _replay(self, state: State) -> Replayed:
        done = Replayed()
        for path in self.journals():
            done.put += replay(state, read_journal(path), path, self.display)
            done.journals.append(path)
        return done

    def read(self, serial: int | None = None) -> State:
        state = self.inner.read(serial)
        if serial is None:
            self._replay(state)
        return state

    def open(self) -> JournaledStore:
        inner = self.inner.open()
        replayed = self._replay(inner.state)
        if replayed.put:
            inner.save()
        for path in replayed.journals:
            if _ended(path):
                path.unlink(missing_ok=True)
        self.replayed = replayed
        writer = JournalWriter(self.folder, self.prefix)
        writer.known(inner.state)
        store = JournaledStore(inner, writer)
        self._stores.append(store)
        return store

    def lock(self, *, timeout: float, command: str) -> Lock:
        return self.inner.lock(timeout=timeout, command=command)

    def replace(self, state: State) -> None:
        self.inner.replace(state)

    def holder(self) -> dict[str, Any] | None:
        return self.inner.holder()

    def force_unlock(self) -> dict[str, Any] | None:
        return self.inner.force_unlock()

    def history(self) -> list[Version]:
        return self.inner.history()

    def close(self) -> None:
        for store in self._stores:
            store.writer.close(keep=store.failed or store.unsaved)
        self._stores.clear()
        self.inner.close()

    def __enter__(self) -> JournaledBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The file backend: the state as one JSON file, saved atomically with a backup, and its flock lock.

The only module that writes a state file. A file changed underneath us (another lineage or serial) is
refused and never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from reconciler.errors import LockError, StateError
from reconciler.files import atomic_write
from reconciler.state.backend import Version, kept_versions
from reconciler.state.model import State, now_iso, parse_state


def read_state(path: Path) -> State:
    """Read a state file; a missing file is a new, empty state (serial 0)."""
    try:  # the bytes are handed over, not kept here: parse_state lets go of each form once it has the next
        return parse_state(path.read_bytes(), str(path))
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror}") from exc


def _header(path: Path) -> tuple[str, int] | None:
    """(lineage, serial) of the file on disk, or None if there is none."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: the state file on disk is unreadable; refusing to overwrite it.") from exc
    if not isinstance(data, dict):
        raise StateError(f"{path}: the state file on disk is not a JSON object; refusing to overwrite it.")
    return str(data.get("lineage")), int(data.get("serial") or 0)


class StateStore:
    """Owns one state file: load once, then save atomically after every change.

    A save writes a temporary file, fsyncs it, hard-links the current file to `.backup`, renames the
    temporary file over the state and fsyncs the folder: a kill at any instant leaves either the old or the
    new file whole. Before writing it checks that the file on disk is still the one it last read or wrote
    (same lineage and serial), so it never overwrites a foreign or concurrently changed state.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = read_state(path)
        self._disk: tuple[str, int] | None = (self.state.lineage, self.state.serial) if path.exists() else None
        self._stat = _stat(path)

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".backup")

    def save(self) -> None:
        """Serialise and write the state now (the synchronous path used by single-step commands)."""
        self.write(self.render())

    def prepare(self) -> str:
        """The backend seam's name for `render`: the whole next version of the file."""
        return self.render()

    def render(self) -> str:
        """The next version of the file as text (serial incremented). Call `write` with it next."""
        self.state.serial += 1
        # Sorted by address and by image hash, so the file diffs well in git. pydantic's own JSON encoder:
        # an apply serialises the whole state on every commit, and json.dumps(indent=...) runs in pure
        # Python (~6x slower: 0.15 s per commit for a 10,000-image state).
        for name in ("images", "resources"):
            items = getattr(self.state, name)
            if any(a > b for a, b in zip(items, list(items)[1:], strict=False)):
                setattr(self.state, name, dict(sorted(items.items())))
        return self.state.model_dump_json(indent=1) + "\n"

    def write(self, text: str) -> None:
        """Atomically replace the file with `text`, keeping the previous version as `.backup`."""
        if _stat(self.path) != self._stat and (on_disk := _header(self.path)) != self._disk:
            raise StateError(
                f"{self.path} changed on disk while reconciler was running "
                f"(expected lineage/serial {self._disk}, found {on_disk}); refusing to overwrite it."
            )
        atomic_write(self.path, text, backup=self.backup_path)
        self._disk = (self.state.lineage, self.state.serial)
        self._stat = _stat(self.path)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------------------------------------- lock


def lock_path_for(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_holder(info: dict[str, Any]) -> str:
    user = f" as {info['user']}" if info.get("user") else ""
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}{user}, since {info.get('since', '?')}"


def read_lock_info(lock_path: Path) -> dict[str, Any] | None:
    try:
        text = lock_path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        info = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _holder_info(lock_path: Path, wait: float = 1.0) -> dict[str, Any]:
    """The holder's info; it writes it just after taking the lock, so give it a moment if the file is empty."""
    deadline = time.monotonic() + wait
    while not (info := read_lock_info(lock_path)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return info or {}


class StateLock:
    """An exclusive lock beside the state file, held for the whole command.

    Mutual exclusion is an OS lock (flock) on the lock file, so a killed process can never wedge it; the
    file also names its holder (pid, host, since, command) for the error message of the one that waits.
    A lock recorded by another host cannot be checked from here: it is refused until `force-unlock`.
    """

    def __init__(self, state_path: Path, *, timeout: float = 0.0, command: str = "") -> None:
        self.path = lock_path_for(state_path)
        self.timeout = timeout
        self.command = command
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None  # a dead holder's info, if we replaced one

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    info = _holder_info(self.path)
                    waited = f" after waiting {self.timeout:g}s" if self.timeout else ""
                    raise LockError(
                        f"the state is locked by another reconciler ({describe_holder(info)}"
                        f"{', running ' + repr(info['command']) if info.get('command') else ''}){waited}. "
                        "Wait for it to finish, or pass --lock-timeout to wait."
                    ) from None
                time.sleep(0.1)
        previous = read_lock_info(self.path)
        host = socket.gethostname()
        if previous and previous.get("pid") is not None:
            if previous.get("host") != host:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise LockError(
                    f"the state is locked by {describe_holder(previous)}, another host; this host cannot "
                    "tell whether it still runs. If it does not, run `reconciler force-unlock`."
                )
            if previous.get("pid") != os.getpid() and not _pid_alive(int(previous["pid"])):
                self.took_over = previous
        info = {"pid": os.getpid(), "host": host, "since": now_iso(), "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def force_unlock(state_path: Path) -> dict[str, Any] | None:
    """Remove the lock file; returns the holder it named. Refuses while a live process holds it here."""
    path = lock_path_for(state_path)
    info = read_lock_info(path)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LockError(
                f"the lock is held by a running process ({describe_holder(info or {})}); "
                "stop that process instead of unlocking."
            ) from None
        path.unlink()
    finally:
        os.close(fd)
    return info


# ---------------------------------------------------------------------------------------------- backend


class FileBackend:
    """The state as one JSON file (see `StateStore`), its flock lock beside it, and `.backup` as its history."""

    def __init__(self, path: Path, workspace: str = "default") -> None:
        self.path = path
        self.workspace = workspace
        self.display = str(path)

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".backup")

    def read(self, serial: int | None = None) -> State:
        state = read_state(self.path)
        if serial is None or serial == state.serial:
            return state
        if self.backup_path.exists():
            backup = parse_state(self.backup_path.read_bytes(), str(self.backup_path))
            if backup.serial == serial:
                return backup
        raise StateError(f"{self.display}: no version with serial {serial} is kept ({kept_versions(self.history())})")

    def lock(self, *, timeout: float, command: str) -> StateLock:
        return StateLock(self.path, timeout=timeout, command=command)

    def open(self) -> StateStore:
        return StateStore(self.path)

    def replace(self, state: State) -> None:
        store = StateStore(self.path)
        store.state = state
        store.write(state.model_dump_json(indent=1) + "\n")

    def holder(self) -> dict[str, Any] | None:
        return read_lock_info(lock_path_for(self.path))

    def force_unlock(self) -> dict[str, Any] | None:
        return force_unlock(self.path)

    def history(self) -> list[Version]:
        versions = []
        for path in (self.path, self.backup_path):
            header = _header(path) if path.exists() else None
            if header is not None:
                saved = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))
                versions.append(Version(header[1], saved, "" if path == self.path else "backup"))
        return versions

    def close(self) -> None:
        return None

    def __enter__(self) -> FileBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

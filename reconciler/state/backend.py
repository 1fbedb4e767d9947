"""The seam between the commands and where the state lives: a file (the default) or PostgreSQL.

Every command reaches the state through a `Backend`, chosen in one place (`open_backend`) from the resolved
`state.url` and workspace:

    read(serial)      the state now (or a kept earlier version), without the lock (plan, state list)
    lock(...)         held for the whole command; names its holder to whoever waits; `took_over` a dead one's
    open()            under the lock: a `Store` that loads the state once and commits every change
    replace(state)    under the lock: write a whole state (state push, state migrate)
    holder(), force_unlock(), history(), close()

A `Store` commits in two halves so the applier can group commits: `prepare()` runs on the event-loop thread
(nobody mutates the state meanwhile) and returns what to write; `write(change)` runs in a worker thread and
makes it durable at once, all of it or none of it. The file backend writes the whole document; the
PostgreSQL backend writes only the entries that changed, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.state.model import State

# Where a project keeps its state by default (a file path beside the manifests): Novita's, and the simulator's.
DEFAULT_STATE = Path("state/state.json")
SIM_STATE = Path("state/sim.json")


@dataclass(frozen=True)
class Version:
    """One kept version of the state."""

    serial: int
    saved_at: str
    command: str = ""


class Store(Protocol):
    """The state of one command, loaded once; every change is committed before the next step relies on it."""

    state: State

    def prepare(self) -> Any:
        """The next version (serial + 1) as what `write` needs; on the thread that mutates the state."""

    def write(self, change: Any) -> None:
        """Make `change` durable, atomically: a kill at any instant leaves the previous version or this one."""

    def save(self) -> None:
        """prepare + write, for one-step commands."""


class Lock(Protocol):
    took_over: dict[str, Any] | None  # the holder before us, if it ended without releasing the lock

    def __enter__(self) -> Lock: ...

    def __exit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    display: str  # how messages name the state: a path, or a URL with *** for its password, and the workspace
    workspace: str

    def read(self, serial: int | None = None) -> State:
        """The current state (a new, empty one if there is none), or the kept version `serial`."""

    def lock(self, *, timeout: float, command: str) -> Lock:
        """The exclusive lock, held for a whole command (a context manager)."""

    def open(self) -> Store:
        """The state for a command that holds the lock and changes it."""

    def replace(self, state: State) -> None:
        """Under the lock: store `state` whole, with its own lineage and serial."""

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (pid, host, user, command, since), or None when nobody does."""

    def force_unlock(self) -> dict[str, Any] | None:
        """Clear a stale lock; returns the holder it named. Refuses while a live process holds it."""

    def history(self) -> list[Version]:
        """The versions that can be read back with `read(serial)`, newest first."""

    def close(self) -> None:
        """Release what the backend holds open (a database connection); the lock goes with it."""

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


def kept_versions(versions: list[Version]) -> str:
    """How an error names the versions that can be read back."""
    if not versions:
        return "none is kept"
    serials = sorted(v.serial for v in versions)
    if len(serials) == 1:
        return f"kept: serial {serials[0]}"
    return f"kept: serials {serials[0]} to {serials[-1]}; see `reconciler state history`"


def workspace_file(path: Path, workspace: str) -> Path:
    """Where the file backend keeps a workspace: the default beside the project, others like Terraform's
    local backend, `state/state.json.d/<workspace>/state.json`."""
    if workspace == "default":
        return path
    return path.with_name(path.name + ".d") / workspace / path.name


def is_url(location: str) -> bool:
    return "://" in location


def open_backend(location: str, workspace: str, setting: str, *, reconnect_window: float = 60.0) -> Backend:
    """The backend for `location` (a file path or a postgresql:// URL). `setting` names where the location
    came from (`--state`, `RECONCILER_STATE_URL`, `state.url in reconciler.yaml`), for error messages;
    `reconnect_window`: how long a commit to a database keeps reconnecting after its connection went."""
    if is_url(location):
        from reconciler.state.postgres import PostgresBackend

        return PostgresBackend(location, workspace, setting, reconnect_window)
    from reconciler.state.file import FileBackend

    return FileBackend(workspace_file(Path(location), workspace), workspace)

"""Ride out a database that goes away mid-command (a failover, a restart for maintenance).

A commit whose connection is gone is not the end of the apply: `ride_out` reconnects with back-off for up to
the reconnect window (`state.reconnect_window`, default 60 s), takes the workspace's advisory lock again, and
checks that the workspace still holds the lineage and serial this command wrote last. Then the caller writes
its pending change again, or learns that it already landed (the server committed it, and only its answer was
lost). Anything else ends in `StateLost`: another runner took the lock meanwhile, the serial moved, or the
window ran out. The committer then submits nothing more (see reconciler.apply.commit), and what the command
paid for is kept in its local journal (reconciler.state.journal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.errors import ConfigError, StateError
from reconciler.text import duration

if TYPE_CHECKING:
    from reconciler.state.postgres import PostgresBackend, _Change

DEFAULT_WINDOW = 60.0
BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds between tries; the last one repeats


class StateLost(StateError):
    """The state cannot be committed any more: this command must stop submitting (its journal keeps the rest)."""


class ConnectionLost(ConfigError):
    """A statement failed because the connection to the database is gone (not because of what it said)."""


def ride_out(
    backend: PostgresBackend,
    change: _Change,
    expect: tuple[str, int] | None,
    lost: ConnectionLost,
    *,
    since: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Reconnect (until `since` + the window), take the lock again and check the workspace is still at `expect`.
    True: `change` already landed before the connection went; False: write it again. Raises StateLost."""
    window = backend.reconnect_window
    tries = 0
    last = str(lost).rsplit(": ", 1)[-1]
    if clock() - since < 0.001:
        backend.notify("state_reconnecting", window=window, reason=last)
    while True:
        backend.close()
        try:
            if _take_lock(backend):
                landed = _landed(backend, change, expect)
                backend.notify("state_reconnected", after=round(clock() - since, 3))
                return landed
            holder = backend.holder() or {}
            backend.close()  # nothing of the other runner's is touched when this command ends (its lock row stays)
            from reconciler.state.file import describe_holder

            raise StateLost(
                f"{backend.setting} {backend.shown}: the connection was lost and another reconciler took the lock "
                f"meanwhile ({describe_holder(holder)}); this apply stopped submitting"
            )
        except ConfigError as exc:  # cannot connect yet, or lost again
            last = str(exc).rsplit(": ", 1)[-1]
        waited = clock() - since
        if waited >= window:
            raise StateLost(
                f"{backend.setting} {backend.shown}: cannot save the state: the connection is lost, and reconnecting "
                f"for {duration(waited)} did not succeed (state.reconnect_window: {window:g}s; last: {last}); this "
                "apply stopped submitting"
            )
        sleep(min(BACKOFF[min(tries, len(BACKOFF) - 1)], max(0.0, since + window - clock())))
        tries += 1


def _take_lock(backend: PostgresBackend) -> bool:
    """The advisory lock on a new connection, without waiting; records this process as its holder again."""
    classid, objid = backend.lock_key()
    if not backend._execute("SELECT pg_try_advisory_lock(%s, %s)", (classid, objid))[0][0]:
        return False
    backend.claim_lock(backend.command)
    return True


def _landed(backend: PostgresBackend, change: _Change, expect: tuple[str, int] | None) -> bool:
    """Whether the workspace is where this command left it (False) or holds `change` already (True)."""
    rows = backend._execute(
        "SELECT lineage, serial FROM reconciler_workspaces WHERE workspace = %s", (backend.workspace,)
    )
    found: tuple[Any, ...] | None = (str(rows[0][0]), int(rows[0][1])) if rows else None
    if found == expect:
        return False
    if found == (change.lineage, change.serial):
        written = backend._execute(
            "SELECT section, key, data::text FROM reconciler_entries WHERE workspace = %s AND since = %s",
            (backend.workspace, change.serial),
        )
        if sorted((str(s), str(k), str(d)) for s, k, d in written) == sorted(change.upserts):
            return True
    raise StateLost(
        f"{backend.display} changed in the database while the connection was lost (expected lineage/serial "
        f"{expect}, found {found}); this apply stopped submitting and does not overwrite it"
    )

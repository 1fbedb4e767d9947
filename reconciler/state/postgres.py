"""The PostgreSQL backend: the state of a team, in tables, with an advisory lock held for the whole command.

The only module that speaks to PostgreSQL (psycopg 3, the `postgres` extra). Layout (created on first use and
versioned in `reconciler_meta`, so a later release can migrate it):

    reconciler_workspaces  one row per workspace: lineage, serial, document version
    reconciler_entries     one row per image (section "images", by content hash) and per resource ("resources",
                           by address) and per version: the entry's JSON, valid from serial `since` until
                           `until` (NULL: current). A commit retires the changed rows and inserts their new
                           versions, in one transaction with the serial, so it writes only what changed and a
                           commit killed half-way leaves the previous serial whole.
    reconciler_versions    the serials that can be read back (the last HISTORY_SERIALS, and the state each of
                           the last HISTORY_COMMANDS commands left); older rows are pruned when a command ends
    reconciler_locks       who holds a workspace's lock (pid, host, user, command, since, server pid)

The lock is `pg_try_advisory_lock` on the session: the server drops it when the holder's connection dies (a
SIGKILL closes the socket at once; TCP keepalives on both ends notice a machine that vanished within seconds),
so a dead apply never wedges the team. The password comes from libpq's usual places (the URL, PGPASSWORD,
~/.pgpass) and is never shown: messages name the URL with `***` for it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import ConfigError, LockError, StateError
from reconciler.state.backend import Version, kept_versions
from reconciler.state.model import _REVISION, State, now_iso, parse_state
from reconciler.state.reconnect import DEFAULT_WINDOW, ConnectionLost, ride_out
from reconciler.urls import redact_url_password, url_password

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1
LOCK_CLASS = 0x7265636F  # "reco": the first key of every advisory lock reconciler takes
HISTORY_SERIALS = 100
HISTORY_COMMANDS = 30
SECTIONS = ("images", "resources")
# libpq keepalives (client side) and the server's own for this session: a peer that vanished is noticed in
# about idle + interval × count seconds, not the system's default two hours.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "2", "keepalives_count": "3"}
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"

SCHEMA = [
    "CREATE TABLE reconciler_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE reconciler_workspaces (
        workspace text PRIMARY KEY,
        lineage text NOT NULL,
        serial bigint NOT NULL,
        version integer NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE reconciler_entries (
        workspace text NOT NULL,
        section text NOT NULL,
        key text NOT NULL,
        since bigint NOT NULL,
        until bigint,
        data json NOT NULL,
        PRIMARY KEY (workspace, section, key, since))""",
    "CREATE INDEX reconciler_entries_current ON reconciler_entries (workspace, section, key) WHERE until IS NULL",
    """CREATE TABLE reconciler_versions (
        workspace text NOT NULL,
        serial bigint NOT NULL,
        lineage text NOT NULL,
        saved_at timestamptz NOT NULL DEFAULT now(),
        command text NOT NULL DEFAULT '',
        milestone boolean NOT NULL DEFAULT false,
        PRIMARY KEY (workspace, serial))""",
    """CREATE TABLE reconciler_locks (
        workspace text PRIMARY KEY,
        pid integer NOT NULL,
        host text NOT NULL,
        username text NOT NULL,
        command text NOT NULL,
        since text NOT NULL,
        backend_pid integer NOT NULL)""",
]


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("the PostgreSQL state backend needs psycopg: pip install 'reconciler[postgres]'") from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    """The reason in a driver's message, on one line: libpq says "connection failed: connection to server at
    "host", port N failed: FATAL:  password authentication failed for user "bob"": keep what follows the last
    "failed: " of the first line, without the severity."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " ".join((lines[0] if lines else type(exc).__name__).split())
    if text.startswith("connection failed: ") or text.startswith("connection to server"):
        text = text.rsplit("failed: ", 1)[-1]
    for severity in ("FATAL: ", "ERROR: "):
        text = text.removeprefix(severity)
    return text


def _connect_hint(reason: str) -> str:
    lower = reason.lower()
    if "password" in lower:
        return " (the password comes from the URL, PGPASSWORD or ~/.pgpass)"
    if "refused" in lower or "timeout" in lower or "could not translate host name" in lower:
        return " (is the server running, and reachable from here?)"
    return ""


@dataclass
class _Change:
    """One commit: the entries that changed (JSON) and the keys that went, for serial `serial`."""

    serial: int
    lineage: str
    version: int
    upserts: list[tuple[str, str, str]]  # (section, key, json)
    gone: list[tuple[str, str]]  # (section, key)
    marks: dict[str, dict[str, tuple[Any, int]]]  # what `written` becomes once this commit is durable


class PostgresBackend:
    """The state of one workspace in a PostgreSQL database."""

    def __init__(
        self, url: str, workspace: str = "default", setting: str = "state.url", reconnect_window: float = DEFAULT_WINDOW
    ) -> None:
        self.url = url
        self.reconnect_window = reconnect_window  # how long a commit whose connection is gone keeps reconnecting
        self.notify: Callable[..., None] = lambda event, **data: None  # told when a commit rides out a lost connection
        self.workspace = workspace
        self.setting = setting
        self.shown = redact_url_password(url)
        self.display = f"{self.shown} (workspace {workspace})"
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False
        self._lock = threading.Lock()  # one statement at a time on the connection (the committer writes in a thread)
        self.command = ""  # the command holding the lock, recorded with every version it writes

    # -------------------------------------------------------------------------------------- connection

    def _fail(self, what: str, exc: BaseException) -> ConfigError:
        text = _first_line(exc)
        password = url_password(self.url)
        if password:
            text = text.replace(password, "***")
        conn = self._conn  # the connection itself is gone (the server shut down, restarted or vanished)?
        lost = isinstance(exc, _driver().OperationalError) or (conn is not None and (conn.closed or conn.broken))
        kind = ConnectionLost if lost else ConfigError
        return kind(f"{self.setting} {self.shown}: {what}: {text}")

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            psycopg = _driver()
            from psycopg.conninfo import conninfo_to_dict, make_conninfo

            try:
                given = conninfo_to_dict(self.url)
            except psycopg.ProgrammingError as exc:
                raise self._fail("not a valid PostgreSQL URL", exc) from None
            extra: dict[str, Any] = {k: v for k, v in KEEPALIVES.items() if k not in given}
            extra.setdefault("connect_timeout", given.get("connect_timeout") or "10")
            extra["application_name"] = given.get("application_name") or "reconciler"
            extra["options"] = f"{given.get('options', '')} {SERVER_KEEPALIVES}".strip()
            try:
                self._conn = psycopg.connect(make_conninfo(self.url, **extra), autocommit=True)
            except psycopg.Error as exc:
                error = self._fail("cannot connect", exc)
                raise ConfigError(str(error) + _connect_hint(_first_line(exc))) from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _schema(self, *, create: bool) -> bool:
        """Check the schema's version; create it (when `create`) if there is none. False: no schema yet."""
        if self._schema_ready:
            return True
        psycopg = _driver()
        try:
            with self._lock:
                row = self.conn.execute("SELECT value FROM reconciler_meta WHERE key = 'schema_version'").fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        except psycopg.Error as exc:
            raise self._fail("cannot read reconciler's tables", exc) from None
        if row is None:
            if not create:
                return False
            self._create_schema()
        elif int(row[0]) > SCHEMA_VERSION:
            raise ConfigError(
                f"{self.setting} {self.shown}: the database holds reconciler's tables in schema version {row[0]}, "
                f"newer than this reconciler understands (version {SCHEMA_VERSION}); upgrade reconciler. "
                "Nothing was changed."
            )
        self._schema_ready = True
        return True

    def _create_schema(self) -> None:
        psycopg = _driver()
        try:
            with self._lock, self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))  # one creator at a time
                exists = self.conn.execute("SELECT to_regclass('reconciler_meta')").fetchone()
                if exists is None or exists[0] is None:
                    for statement in SCHEMA:
                        self.conn.execute(statement)
                    self.conn.execute(
                        "INSERT INTO reconciler_meta (key, value) VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),)
                    )
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ConfigError(
                f"{self.setting} {self.shown}: cannot create reconciler's tables ({_first_line(exc)}); grant the "
                "role CREATE on the database's schema, or have its owner run a reconciler command once. "
                "Nothing was changed."
            ) from None
        except psycopg.Error as exc:
            raise self._fail("cannot create reconciler's tables", exc) from None

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        psycopg = _driver()
        try:
            with self._lock:
                cur = self.conn.execute(sql, params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise self._fail("query failed", exc) from None

    # -------------------------------------------------------------------------------------- read

    def read(self, serial: int | None = None) -> State:
        if not self._schema(create=False):
            if serial:
                raise StateError(f"{self.display}: no version with serial {serial} is kept (none is kept)")
            return State()
        psycopg = _driver()
        try:
            with self._lock, self.conn.transaction():
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return self._read_locked(serial)
        except psycopg.Error as exc:
            raise self._fail("cannot read the state", exc) from None

    def _read_locked(self, serial: int | None) -> State:
        head = self.conn.execute(
            "SELECT lineage, serial, version FROM reconciler_workspaces WHERE workspace = %s", (self.workspace,)
        ).fetchone()
        if head is None:
            if serial:
                raise StateError(f"{self.display}: no version with serial {serial} is kept (none is kept)")
            return State()
        lineage, current, version = head
        at = current if serial is None else serial
        if at != current:
            kept = self.conn.execute(
                "SELECT 1 FROM reconciler_versions WHERE workspace = %s AND serial = %s", (self.workspace, at)
            ).fetchone()
            if kept is None:
                raise StateError(
                    f"{self.display}: no version with serial {at} is kept ({kept_versions(self._history_locked())})"
                )
        row = self.conn.execute(
            """SELECT
                 coalesce(json_object_agg(key, data ORDER BY key) FILTER (WHERE section = 'images'), '{}')::text,
                 coalesce(json_object_agg(key, data ORDER BY key) FILTER (WHERE section = 'resources'), '{}')::text
               FROM reconciler_entries
               WHERE workspace = %s AND since <= %s AND (until IS NULL OR until > %s)""",
            (self.workspace, at, at),
        ).fetchone()
        images, resources = row if row is not None else ("{}", "{}")
        text = (
            f'{{"version": {int(version)}, "serial": {int(at)}, "lineage": "{lineage}", '
            f'"images": {images}, "resources": {resources}}}'
        )
        return parse_state(text.encode(), self.display)

    def history(self) -> list[Version]:
        if not self._schema(create=False):
            return []
        with self._lock:
            return self._history_locked()

    def _history_locked(self) -> list[Version]:
        rows = self.conn.execute(
            "SELECT serial, saved_at, command FROM reconciler_versions WHERE workspace = %s ORDER BY serial DESC",
            (self.workspace,),
        ).fetchall()
        return [
            Version(int(s), at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "", c) for s, at, c in rows
        ]

    # -------------------------------------------------------------------------------------- lock

    def lock(self, *, timeout: float, command: str) -> PostgresLock:
        self._schema(create=True)
        return PostgresLock(self, timeout=timeout, command=command)

    def lock_key(self) -> tuple[int, int]:
        key = zlib.crc32(self.workspace.encode())
        return LOCK_CLASS, key - (1 << 32) if key >= 1 << 31 else key

    def holder(self) -> dict[str, Any] | None:
        if not self._schema(create=False):
            return None
        rows = self._execute(
            "SELECT pid, host, username, command, since, backend_pid FROM reconciler_locks WHERE workspace = %s",
            (self.workspace,),
        )
        if not rows:
            return None
        return dict(zip(("pid", "host", "user", "command", "since", "backend_pid"), rows[0], strict=True))

    def _lock_is_held(self) -> bool:
        classid, objid = self.lock_key()
        rows = self._execute(
            """SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %s::bigint & 4294967295
               AND objid::bigint = %s::bigint & 4294967295 AND objsubid = 2 AND granted""",
            (classid, objid),
        )
        return bool(rows)

    def claim_lock(self, command: str) -> None:
        """Name this process as the holder of the advisory lock it has just taken (on this connection)."""
        me = self._execute("SELECT pg_backend_pid()")[0][0]
        self._execute(
            """INSERT INTO reconciler_locks (workspace, pid, host, username, command, since, backend_pid)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (workspace) DO UPDATE SET pid = excluded.pid, host = excluded.host,
                 username = excluded.username, command = excluded.command, since = excluded.since,
                 backend_pid = excluded.backend_pid""",
            (self.workspace, os.getpid(), socket.gethostname(), _user(), command, now_iso(), me),
        )

    def force_unlock(self) -> dict[str, Any] | None:
        info = self.holder()
        if self._lock_is_held():
            backend = (info or {}).get("backend_pid", "?")
            from reconciler.state.file import describe_holder

            raise LockError(
                f"the lock is held by a live connection ({describe_holder(info or {})}, server process {backend}); "
                "stop that reconciler instead of unlocking (the server releases the lock the moment its "
                f"connection ends; a database admin can end it with SELECT pg_terminate_backend({backend}))."
            )
        if info is not None:
            self._execute("DELETE FROM reconciler_locks WHERE workspace = %s", (self.workspace,))
        return info

    # -------------------------------------------------------------------------------------- write

    def open(self) -> PostgresStore:
        self._schema(create=True)
        return PostgresStore(self, self.read())

    def replace(self, state: State) -> None:
        """Store `state` whole (state push, state migrate): every current row retired, all of it inserted."""
        self._schema(create=True)
        upserts = [
            (section, key, obj.model_dump_json())
            for section in SECTIONS
            for key, obj in getattr(state, section).items()
        ]
        current = self.read()
        gone = [(section, key) for section in SECTIONS for key in getattr(current, section)]
        exists = self._execute("SELECT 1 FROM reconciler_workspaces WHERE workspace = %s", (self.workspace,))
        change = _Change(state.serial, state.lineage, state.version, upserts, gone, {})
        self._commit(change, expect=(current.lineage, current.serial) if exists else None, force=True)

    def _commit(
        self, change: _Change, *, expect: tuple[str, int] | None, command: str = "", force: bool = False
    ) -> None:
        """Write one change set in one transaction; refuse when the workspace is not at `expect` any more."""
        psycopg = _driver()
        ws = self.workspace
        try:
            with self._lock, self.conn.transaction():
                conn = self.conn
                if expect is None:
                    cur = conn.execute(
                        """INSERT INTO reconciler_workspaces (workspace, lineage, serial, version)
                           VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                        (ws, change.lineage, change.serial, change.version),
                    )
                else:
                    where = "" if force else " AND lineage = %s AND serial = %s"
                    params: tuple[Any, ...] = (change.lineage, change.serial, change.version, ws)
                    cur = conn.execute(
                        "UPDATE reconciler_workspaces SET lineage = %s, serial = %s, version = %s, updated_at = now() "
                        "WHERE workspace = %s" + where,
                        params if force else (*params, *expect),
                    )
                if cur.rowcount != 1:
                    found = conn.execute(
                        "SELECT lineage, serial FROM reconciler_workspaces WHERE workspace = %s", (ws,)
                    ).fetchone()
                    raise StateError(
                        f"{self.display} changed in the database while reconciler was running (expected lineage/"
                        f"serial {expect}, found {tuple(found) if found else None}); refusing to overwrite it."
                    )
                for section in SECTIONS:
                    keys = [k for s, k, _ in change.upserts if s == section]
                    keys += [k for s, k in change.gone if s == section]
                    if keys:
                        conn.execute(
                            "UPDATE reconciler_entries SET until = %s WHERE workspace = %s AND section = %s "
                            "AND key = ANY(%s) AND until IS NULL",
                            (change.serial, ws, section, keys),
                        )
                if change.upserts:
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO reconciler_entries (workspace, section, key, since, data) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            [(ws, s, k, change.serial, data) for s, k, data in change.upserts],
                        )
                conn.execute(
                    """INSERT INTO reconciler_versions (workspace, serial, lineage, command, milestone)
                       VALUES (%s, %s, %s, %s, %s)
                       ON CONFLICT (workspace, serial) DO UPDATE SET lineage = excluded.lineage""",
                    (ws, change.serial, change.lineage, command or self.command, force),
                )
        except psycopg.Error as exc:
            raise self._fail("cannot save the state", exc) from None

    def mark_and_prune(self) -> None:
        """At the end of a command: keep the state it leaves, and prune versions beyond the history."""
        ws = self.workspace
        with self._lock, self.conn.transaction():
            conn = self.conn
            head = conn.execute("SELECT serial FROM reconciler_workspaces WHERE workspace = %s", (ws,)).fetchone()
            if head is None:
                return
            conn.execute(
                "UPDATE reconciler_versions SET milestone = true WHERE workspace = %s AND serial = %s", (ws, head[0])
            )
            conn.execute(
                """DELETE FROM reconciler_versions WHERE workspace = %s AND serial <= %s AND (NOT milestone OR serial <
                     (SELECT coalesce(min(serial), 0) FROM (SELECT serial FROM reconciler_versions
                      WHERE workspace = %s AND milestone ORDER BY serial DESC LIMIT %s) kept))""",
                (ws, int(head[0]) - HISTORY_SERIALS, ws, HISTORY_COMMANDS),
            )
            conn.execute(
                """DELETE FROM reconciler_entries e WHERE e.workspace = %s AND e.until IS NOT NULL AND NOT EXISTS
                     (SELECT 1 FROM reconciler_versions v WHERE v.workspace = e.workspace
                      AND v.serial >= e.since AND v.serial < e.until)""",
                (ws,),
            )


class PostgresStore:
    """One command's state in PostgreSQL: a commit writes the entries whose object or revision changed."""

    def __init__(self, backend: PostgresBackend, state: State) -> None:
        self.backend = backend
        self.state = state
        self._disk: tuple[str, int] | None = (state.lineage, state.serial) if state.serial else None
        # section -> key -> (the object last written, its revision then); the object is kept alive so that its
        # id cannot be reused by a new entry
        self._written: dict[str, dict[str, tuple[Any, int]]] = {
            section: {key: (obj, obj.__dict__.get(_REVISION, 0)) for key, obj in getattr(state, section).items()}
            for section in SECTIONS
        }
        self._written["resources"].update({s.address: (s.entry, 0) for s in state.skipped})  # dropped at a commit

    def prepare(self) -> _Change:
        state = self.state
        state.serial += 1
        upserts: list[tuple[str, str, str]] = []
        gone: list[tuple[str, str]] = []
        marks: dict[str, dict[str, tuple[Any, int]]] = {}
        for section in SECTIONS:
            items: dict[str, Any] = getattr(state, section)
            written = self._written[section]
            changed: dict[str, tuple[Any, int]] = {}
            new_keys = 0
            for key, obj in items.items():
                rev = obj.__dict__.get(_REVISION, 0)
                seen = written.get(key)
                if seen is None or seen[0] is not obj or seen[1] != rev:
                    new_keys += seen is None
                    changed[key] = (obj, rev)
                    upserts.append((section, key, obj.model_dump_json()))
            removed = [k for k in written if k not in items] if len(items) != len(written) + new_keys else []
            gone += [(section, k) for k in removed]
            if changed or removed:
                marks[section] = {**{k: v for k, v in written.items() if k not in removed}, **changed}
        return _Change(state.serial, state.lineage, state.version, upserts, gone, marks)

    def write(self, change: _Change) -> None:
        """Commit `change`; when the connection is gone, ride it out (reconnect, lock, check) and commit again."""
        since: float | None = None
        while True:
            try:
                self.backend._commit(change, expect=self._disk)
                break
            except ConnectionLost as lost:
                since = time.monotonic() if since is None else since
                if ride_out(self.backend, change, self._disk, lost, since=since):
                    break  # it had landed: only the answer was lost
        self._disk = (change.lineage, change.serial)
        for section, marks in change.marks.items():
            self._written[section] = marks

    def save(self) -> None:
        self.write(self.prepare())

    def listen(self, notify: Callable[..., None]) -> None:
        """`notify(event, **data)` (from the writing thread) when a commit rides out a lost connection."""
        self.backend.notify = notify


class PostgresLock:
    """`pg_try_advisory_lock` for the workspace, held by the backend's connection for the whole command."""

    def __init__(self, backend: PostgresBackend, *, timeout: float = 0.0, command: str = "") -> None:
        self.backend = backend
        self.timeout = timeout
        self.command = command
        self.took_over: dict[str, Any] | None = None
        self._held = False

    def acquire(self) -> None:
        backend = self.backend
        classid, objid = backend.lock_key()
        deadline = time.monotonic() + self.timeout
        while not backend._execute("SELECT pg_try_advisory_lock(%s, %s)", (classid, objid))[0][0]:
            if time.monotonic() >= deadline:
                info = self._holder_info()
                waited = f" after waiting {self.timeout:g}s" if self.timeout else ""
                from reconciler.state.file import describe_holder

                raise LockError(
                    f"the state {backend.display} is locked by another reconciler ({describe_holder(info)}"
                    f"{', running ' + repr(info['command']) if info.get('command') else ''}){waited}. "
                    "Wait for it to finish, or pass --lock-timeout to wait."
                )
            time.sleep(min(0.25, max(0.01, deadline - time.monotonic())))
        self._held = True
        backend.command = self.command
        previous = backend.holder()
        if previous is not None:
            self.took_over = previous  # it held the lock and its connection ended without releasing it
        backend.claim_lock(self.command)

    def _holder_info(self, wait: float = 1.0) -> dict[str, Any]:
        """The holder writes its row just after taking the lock: give it a moment."""
        deadline = time.monotonic() + wait
        while not (info := self.backend.holder()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return info or {}

    def release(self) -> None:
        if not self._held:
            return
        backend = self.backend
        self._held = False
        if backend._conn is None or backend._conn.closed:
            return
        psycopg = _driver()
        try:
            backend.mark_and_prune()
            classid, objid = backend.lock_key()
            backend._execute("DELETE FROM reconciler_locks WHERE workspace = %s", (backend.workspace,))
            backend._execute("SELECT pg_advisory_unlock(%s, %s)", (classid, objid))
        except (psycopg.Error, ConfigError):
            backend.close()  # the server drops the lock with the connection

    def __enter__(self) -> PostgresLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"

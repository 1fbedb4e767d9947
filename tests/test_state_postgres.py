"""The PostgreSQL state backend against a real server (a throwaway cluster): the file backend's semantics (serial,
lineage, refusals, kept versions), workspaces, commits that write only what changed and are never torn, the
advisory lock, the schema's version, and one-line errors that never show the password."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from reconciler.errors import ConfigError, LockError, StateError
from reconciler.state import ImageRecord, State, parse_state
from reconciler.state.postgres import HISTORY_SERIALS, PostgresBackend
from tests.servers import SUPERUSER_PASSWORD, Cluster

REPO = Path(__file__).resolve().parents[1]


def image(n: int, status: str = "uploaded") -> ImageRecord:
    return ImageRecord(assets_id=f"asset-{n}", format="png", status=status)


def test_a_new_workspace_reads_as_an_empty_state_and_a_commit_creates_it(pg_url: str) -> None:
    with PostgresBackend(pg_url) as backend:
        assert backend.read().serial == 0
        assert backend.history() == []
        with backend.lock(timeout=0, command="apply"):
            store = backend.open()
            store.state.images["a" * 64] = image(1)
            store.save()
        again = backend.read()
    assert (again.serial, again.lineage, list(again.images)) == (1, store.state.lineage, ["a" * 64])


def test_a_commit_writes_only_what_changed(pg_url: str) -> None:
    with PostgresBackend(pg_url) as backend, backend.lock(timeout=0, command="apply"):
        store = backend.open()
        for n in range(2000):
            store.state.images[f"{n:064x}"] = image(n)
        first = store.prepare()
        assert len(first.upserts) == 2000
        store.write(first)
        assert store.prepare().upserts == []  # nothing changed: only the serial moves
        store.state.images[f"{7:064x}"].status = "pending"  # an assignment to a field
        store.state.images[f"{9:064x}"] = image(9)  # a new object under a key
        del store.state.images[f"{11:064x}"]
        change = store.prepare()
        assert sorted(k for _, k, _ in change.upserts) == [f"{7:064x}", f"{9:064x}"]
        assert change.gone == [("images", f"{11:064x}")]
        store.write(change)
    with PostgresBackend(pg_url) as backend:
        state = backend.read()
    assert len(state.images) == 1999 and state.images[f"{7:064x}"].status == "pending"
    assert f"{11:064x}" not in state.images


def test_a_commit_killed_half_way_leaves_the_previous_serial_whole(pg_url: str, tmp_path: Path) -> None:
    with PostgresBackend(pg_url) as backend, backend.lock(timeout=0, command="apply"):
        store = backend.open()
        store.state.images["f" * 64] = image(0)
        store.save()
        before = store.state.model_dump()
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from reconciler.state import ImageRecord
        from reconciler.state.postgres import PostgresBackend
        backend = PostgresBackend({pg_url!r})
        store = backend.open()
        for n in range(60000):
            store.state.images[f"{{n:064x}}"] = ImageRecord(assets_id=f"a{{n}}", format="png")
        change = store.prepare()
        print("writing", flush=True)
        store.write(change)
        print("written", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    with psycopg.connect(pg_url, autocommit=True) as watch:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill it while its INSERTs run inside the transaction
            rows = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reconciler' "
                "AND state = 'active' AND query LIKE 'INSERT INTO reconciler_entries%'"
            ).fetchone()
            if rows and rows[0]:
                break
            time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with PostgresBackend(pg_url) as backend:
        after = backend.read()
        assert after.model_dump() == before, "a killed commit left a torn or newer state"
        with backend.lock(timeout=5, command="apply"):  # and the lock is free again
            pass


def test_a_state_changed_by_someone_else_is_refused_not_overwritten(pg_url: str) -> None:
    with PostgresBackend(pg_url) as one, PostgresBackend(pg_url) as two:
        first = one.open()
        first.state.images["a" * 64] = image(1)
        first.save()
        second = two.open()  # reads serial 1
        first.save()  # serial 2 (a writer that ignored the lock)
        second.state.images["b" * 64] = image(2)
        with pytest.raises(StateError, match=r"changed in the database while reconciler was running.*refusing"):
            second.save()
        assert "b" * 64 not in one.read().images


def test_kept_versions_read_back_and_history_is_pruned(pg_url: str) -> None:
    with PostgresBackend(pg_url) as backend:
        with backend.lock(timeout=0, command="apply"):
            store = backend.open()
            for n in range(HISTORY_SERIALS + 30):
                store.state.images[f"{n:064x}"] = image(n)
                store.save()
            assert len(backend.read(5).images) == 5  # every version is there while the command runs
        # the command ended: versions older than the last HISTORY_SERIALS were pruned (command ends are kept)
        last = backend.read().serial
        assert last == HISTORY_SERIALS + 30
        serials = [v.serial for v in backend.history()]
        assert serials[0] == last and min(serials) >= last - HISTORY_SERIALS
        assert len(backend.read(last - 10).images) == last - 10
        with pytest.raises(StateError, match=r"no version with serial 5 is kept \(kept: serials \d+ to 130; "):
            backend.read(5)


def test_workspaces_are_separate_states_in_one_database(pg_url: str) -> None:
    for workspace, count in (("default", 1), ("staging", 3)):
        with PostgresBackend(pg_url, workspace) as backend, backend.lock(timeout=0, command="apply"):
            store = backend.open()
            for n in range(count):
                store.state.images[f"{n:064x}"] = image(n)
            store.save()
    with PostgresBackend(pg_url, "staging") as staging, PostgresBackend(pg_url) as default:
        assert len(staging.read().images) == 3 and len(default.read().images) == 1
        assert staging.read().lineage != default.read().lineage
        with staging.lock(timeout=0, command="apply"), default.lock(timeout=0, command="apply"):
            pass  # one lock per workspace


def test_the_lock_names_its_holder_waits_and_is_freed_when_the_holder_dies(pg_url: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
            "from reconciler.state.postgres import PostgresBackend\n"
            f"lock = PostgresBackend({pg_url!r}).lock(timeout=0, command='apply')\n"
            "lock.acquire(); print('locked', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with PostgresBackend(pg_url) as backend:
            began = time.monotonic()
            with pytest.raises(LockError) as refused:
                backend.lock(timeout=0.5, command="apply").acquire()
            assert time.monotonic() - began >= 0.5
            message = str(refused.value)
            assert f"is locked by another reconciler (pid {holder.pid} on {socket.gethostname()} as " in message
            assert "running 'apply') after waiting 0.5s" in message and SUPERUSER_PASSWORD not in message
            assert "postgresql://postgres:***@" in message
            with pytest.raises(LockError, match=r"held by a live connection.*pg_terminate_backend"):
                backend.force_unlock()
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            lock = backend.lock(timeout=10, command="apply")
            began = time.monotonic()
            lock.acquire()
            assert time.monotonic() - began < 5
            assert lock.took_over is not None and lock.took_over["pid"] == holder.pid
            lock.release()
            assert backend.holder() is None
    finally:
        holder.kill()
        holder.wait()


def test_force_unlock_clears_a_stale_holder_record(pg_url: str) -> None:
    with PostgresBackend(pg_url) as backend:
        with backend.lock(timeout=0, command="apply"):
            pass
        backend._execute(
            "INSERT INTO reconciler_locks VALUES ('default', 4242, 'ci-runner-7', 'ci', 'apply', 'then', 1)"
        )
        assert backend.holder() is not None and backend.holder()["host"] == "ci-runner-7"  # type: ignore[index]
        assert backend.force_unlock() is not None
        assert backend.holder() is None


def test_a_schema_from_a_newer_version_is_refused_and_left_alone(pg_url: str) -> None:
    with PostgresBackend(pg_url) as backend, backend.lock(timeout=0, command="apply"):
        backend.open().save()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE reconciler_meta SET value = '99' WHERE key = 'schema_version'")
    with PostgresBackend(pg_url) as backend, pytest.raises(ConfigError) as refused:
        backend.read()
    assert "schema version 99, newer than this reconciler understands (version 1); upgrade reconciler" in str(
        refused.value
    )
    assert "\n" not in str(refused.value)


def test_a_role_without_create_rights_gets_one_line_naming_the_fix(postgres: Cluster) -> None:
    postgres.role("viewer", "viewer-pw-1")
    db = postgres.database()
    url = postgres.url("viewer", "viewer-pw-1", db)
    with PostgresBackend(url, setting="state.url in reconciler.yaml") as backend:
        assert backend.read().serial == 0  # reading needs no tables
        with pytest.raises(ConfigError) as refused:
            backend.lock(timeout=0, command="apply")
    message = str(refused.value)
    assert message.startswith(f"state.url in reconciler.yaml postgresql://viewer:***@127.0.0.1:{postgres.port}/{db}:")
    assert "cannot create reconciler's tables (permission denied for schema public)" in message
    assert "viewer-pw-1" not in message and "\n" not in message


def test_wrong_password_and_unreachable_server_are_one_line_without_the_password(postgres: Cluster) -> None:
    wrong = postgres.url(password="not-the-password-77")
    with PostgresBackend(wrong, setting="RECONCILER_STATE_URL") as backend, pytest.raises(ConfigError) as refused:
        backend.read()
    assert str(refused.value) == (
        f"RECONCILER_STATE_URL postgresql://postgres:***@127.0.0.1:{postgres.port}/postgres: cannot connect: "
        'password authentication failed for user "postgres" (the password comes from the URL, PGPASSWORD or '
        "~/.pgpass)"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = f"postgresql://bob:s3cret-pw@127.0.0.1:{port}/db"
    with PostgresBackend(closed, setting="--state") as backend, pytest.raises(ConfigError) as refused:
        backend.read()
    assert str(refused.value).startswith(f"--state postgresql://bob:***@127.0.0.1:{port}/db: cannot connect: ")
    assert "(is the server running, and reachable from here?)" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)


def test_the_password_can_come_from_pgpassword(postgres: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    db = postgres.database()
    monkeypatch.setenv("PGPASSWORD", SUPERUSER_PASSWORD)
    with PostgresBackend(postgres.url(password=None, db=db)) as backend, backend.lock(timeout=0, command="apply"):
        backend.open().save()
        assert backend.read().serial == 1


def test_replace_stores_a_whole_state_with_its_lineage(pg_url: str) -> None:
    state = State(serial=7)
    state.images["c" * 64] = image(3)
    with PostgresBackend(pg_url) as backend:
        with backend.lock(timeout=0, command="state push"):
            backend.replace(state)
        back = backend.read()
    assert back.model_dump() == state.model_dump()
    assert parse_state(back.model_dump_json().encode(), "x").serial == 7

"""A commit whose PostgreSQL connection was ended (pg_terminate_backend, as a failover does) against a real server:
it reconnects, takes the lock again and writes; or, when another runner took the lock or moved the serial
meanwhile, it stops with StateLost and touches nothing of theirs."""

from __future__ import annotations

import re

import psycopg
import pytest

from reconciler.state import GenerationEntry
from reconciler.state.postgres import PostgresBackend, PostgresStore
from reconciler.state.reconnect import StateLost
from reconciler.status import Status
from tests.servers import free_port


def cut(backend: PostgresBackend, pg_url: str) -> None:
    """End the backend's session from the server's side, as a failover or a restart does."""
    pid = backend._execute("SELECT pg_backend_pid()")[0][0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def started(pg_url: str) -> tuple[PostgresBackend, PostgresStore]:
    backend = PostgresBackend(pg_url, setting="state.url")
    backend.lock(timeout=0, command="apply").acquire()
    store = backend.open()
    store.state.put(GenerationEntry(name="g", identity="1" * 64, status=Status.SUBMITTING))
    store.save()
    return backend, store


def test_a_cut_connection_is_reconnected_the_lock_taken_again_and_the_change_written(pg_url: str) -> None:
    backend, store = started(pg_url)
    events: list[str] = []
    store.listen(lambda event, **data: events.append(event))
    cut(backend, pg_url)
    store.state.put(GenerationEntry(name="g", identity="1" * 64, status=Status.RUNNING, task_id="t-1"))
    store.save()
    assert events == ["state_reconnecting", "state_reconnected"]
    with PostgresBackend(pg_url) as other:
        assert other.read().generation("g").task_id == "t-1"  # type: ignore[union-attr]
        assert other.holder()["backend_pid"] == backend._execute("SELECT pg_backend_pid()")[0][0]  # type: ignore[index]
    backend.close()


def test_another_runner_holding_the_lock_is_state_lost_and_its_lock_row_stays(pg_url: str) -> None:
    backend, store = started(pg_url)
    cut(backend, pg_url)
    with PostgresBackend(pg_url) as other:
        other.lock(timeout=0, command="apply").acquire()
        store.state.put(GenerationEntry(name="g", identity="1" * 64, status=Status.RUNNING, task_id="t-1"))
        with pytest.raises(StateLost, match="another reconciler took the lock meanwhile"):
            store.save()
        assert other.holder()["backend_pid"] == other._execute("SELECT pg_backend_pid()")[0][0]  # type: ignore[index]
        assert other.read().generation("g").status == "submitting"  # type: ignore[union-attr]
    backend.close()


def test_a_serial_moved_meanwhile_is_state_lost(pg_url: str) -> None:
    backend, store = started(pg_url)
    cut(backend, pg_url)
    with PostgresBackend(pg_url) as other:
        lock = other.lock(timeout=0, command="state rm")
        lock.acquire()
        theirs = other.open()
        theirs.state.resources.clear()
        theirs.save()
        lock.release()
    store.state.put(GenerationEntry(name="g", identity="1" * 64, status=Status.RUNNING, task_id="t-1"))
    with pytest.raises(StateLost, match=r"changed in the database while the connection was lost .*found \('"):
        store.save()
    backend.close()


def test_a_window_that_runs_out_is_state_lost_naming_the_setting(pg_url: str) -> None:
    backend, store = started(pg_url)
    backend.reconnect_window = 0.0
    backend.url = re.sub(r":\d+/", f":{free_port()}/", backend.url)  # as if the server were gone: nothing listens
    cut(backend, pg_url)
    store.state.put(GenerationEntry(name="g", identity="1" * 64, status=Status.RUNNING, task_id="t-1"))
    with pytest.raises(StateLost) as lost:
        store.save()
    assert "cannot save the state: the connection is lost, and reconnecting for 0s did not succeed" in str(lost.value)
    assert "(state.reconnect_window: 0s; last: " in str(lost.value)
    backend.close()

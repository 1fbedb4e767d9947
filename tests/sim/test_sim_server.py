"""Over a real socket: running_simulator's start/stop, dropped connections as clients see them, the CLI."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sim_helpers import AUTH, generation_body

from reconciler.sim.cli import sim as sim_group
from reconciler.sim.config import SimConfig
from reconciler.sim.server import running_simulator


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_start_and_stop_are_fast_and_clean() -> None:
    threads_before = set(threading.enumerate())
    started = time.monotonic()
    with running_simulator(SimConfig.fast()) as sim:
        startup = time.monotonic() - started
        port = int(sim.base_url.rsplit(":", 1)[1])
        assert sim.base_url == f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=sim.base_url) as client:  # a keep-alive connection stays open
            assert client.get("/v3/training", headers=AUTH).json() == {"tasks": [], "pagination": {"next_cursor": ""}}
        stopping = time.monotonic()
    shutdown = time.monotonic() - stopping
    assert startup < 0.5 and shutdown < 0.5, (startup, shutdown)
    assert not _port_open(port)
    assert set(threading.enumerate()) <= threads_before


def test_connections_send_without_nagle() -> None:
    """Every accepted connection has TCP_NODELAY: an answer's body does not wait for the ACK of its headers
    (40 ms a request on a kept-alive connection with Linux's delayed ACKs)."""
    with running_simulator(SimConfig.fast()) as sim:
        port = int(sim.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /v3/training HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n")
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
            server_side = [conn for conn in _server_sockets(port) if conn.getpeername() == client.getsockname()]
            assert server_side
            assert all(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in server_side)


def _server_sockets(port: int) -> list[socket.socket]:
    """The simulator's accepted sockets to `port`, found among this process's open sockets."""
    import gc

    found = []
    for obj in gc.get_objects():
        if isinstance(obj, socket.socket) and obj.fileno() >= 0:
            if obj.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                if obj.getsockname()[1] == port and obj.getpeername():
                    found.append(obj)
            except OSError:  # not connected: the listening socket
                continue
    return found


def test_drops_look_like_a_hung_up_server(caplog: pytest.LogCaptureFixture) -> None:
    config = SimConfig.fast()
    config.faults.apply_spec("txt2img:drop=1")
    config.faults.apply_spec("training-list:drop-after=1")
    with caplog.at_level(logging.ERROR), running_simulator(config) as sim, httpx.Client(base_url=sim.base_url) as c:
        # the server closes the connection without answering: depending on timing the client sees a clean
        # close (RemoteProtocolError) or a reset (ReadError); both are a hung-up server, never an HTTP answer
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            c.post("/v3/async/txt2img", json=generation_body(), headers=AUTH)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            c.get("/v3/training", headers=AUTH)
        assert c.get("/_sim/state").status_code == 200  # the server lives on
        assert sim.account.generations == {}
        assert [r["fault"] for r in sim.account.request_log] == ["drop", "drop-after"]
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]


def test_storage_rules_over_a_socket() -> None:
    with running_simulator(SimConfig.fast()) as sim, httpx.Client(base_url=sim.base_url) as c:
        asset = c.post("/v3/assets/training_dataset", json={"file_extension": "png"}, headers=AUTH).json()
        assert asset["upload_url"].startswith(sim.base_url)

        def chunks() -> Iterator[bytes]:
            yield b"abc"

        assert c.put(asset["upload_url"], content=chunks()).status_code == 501
        assert c.put(asset["upload_url"], content=b"abc", headers=AUTH).status_code == 400
        assert c.put(asset["upload_url"], content=b"abc").status_code == 200


def test_persistent_data_folder(tmp_path: Path) -> None:
    with running_simulator(SimConfig.fast(), tmp_path) as sim, httpx.Client(base_url=sim.base_url) as c:
        task_id = c.post("/v3/async/txt2img", json=generation_body(), headers=AUTH).json()["task_id"]
    with running_simulator(SimConfig.fast(), tmp_path) as sim, httpx.Client(base_url=sim.base_url) as c:
        assert c.get("/v3/async/task-result", params={"task_id": task_id}, headers=AUTH).status_code == 200
    records = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert len(records) == 2


def test_cli_help_on_every_command() -> None:
    runner = CliRunner()
    for args in ([], ["serve"]):
        result = runner.invoke(sim_group, [*args, "--help"])
        assert result.exit_code == 0 and len(result.output) > 200
    serve = sim_group.commands["serve"]  # type: ignore[attr-defined]
    assert serve.help and all(p.help for p in serve.params if p.name != "help")


def test_cli_rejects_a_bad_fault() -> None:
    result = CliRunner().invoke(sim_group, ["serve", "--fault", "moon=1"])
    assert result.exit_code == 2 and "unknown kind 'moon'" in result.output


def test_cli_serve_port_zero_prints_the_port(tmp_path: Path) -> None:
    code = "from reconciler.sim.cli import sim; sim()"
    args = [sys.executable, "-c", code, "serve", "--port", "0", "--data", str(tmp_path), "--api-key", "k1",
            "--fault", "latency=0", "--random-seed", "1", "--training-seconds", "0.1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            rf"Novita simulator listening on (http://127\.0\.0\.1:\d+) \(data: {re.escape(str(tmp_path))}\)\n", line
        )
        assert match, line
        with httpx.Client(base_url=match.group(1), timeout=5) as c:
            assert c.get("/v3/training", headers={"Authorization": "Bearer k1"}).status_code == 200
            assert c.get("/v3/training", headers={"Authorization": "Bearer k2"}).status_code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    assert (tmp_path / "account.json").exists()
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 2

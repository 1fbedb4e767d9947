"""Serving the simulator: uvicorn on a loopback socket, in the foreground (CLI) or in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from reconciler.sim.account import Account, Clock
from reconciler.sim.app import create_app
from reconciler.sim.config import SimConfig


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0: the OS picks a free one); connections wait in its backlog until served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP, and an
    # accepted socket inherits this one's protocol. With Nagle on, the body of every answer waited for the
    # client's delayed ACK of its headers: 40 ms a request on a kept-alive connection, which no server adds.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        use_colors=False,  # uvicorn would ask sys.stdout.isatty(), and stdout may be closed (`>&-`)
        access_log=False,
        lifespan="off",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )


class RunningSimulator:
    """A simulator served by uvicorn in a daemon thread: `.base_url`, `.account`, `.stop()`."""

    def __init__(self, config: SimConfig, data_dir: Path | None, clock: Clock | None = None) -> None:
        app = create_app(config, data_dir, clock)
        self.account: Account = app.state.account
        self._sock = bind()
        port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(_uvicorn_config(app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=f"novita-sim-{port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Novita simulator did not start")
            time.sleep(0.002)

    def stop(self) -> None:
        """Stop serving, wait for the thread, close the socket, and save the account. Idempotent."""
        self._server.should_exit = True
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._sock.close()
        self.account.flush()


@contextlib.contextmanager
def running_simulator(
    config: SimConfig | None = None, data_dir: Path | None = None, clock: Clock | None = None
) -> Iterator[RunningSimulator]:
    """Run a simulator on a free loopback port for the duration of the block."""
    sim = RunningSimulator(config or SimConfig(), data_dir, clock)
    try:
        yield sim
    finally:
        sim.stop()


def serve_forever(config: SimConfig, data_dir: Path | None, host: str, port: int, announce: bool = True) -> None:
    """Serve in the foreground until Ctrl-C / SIGTERM; prints the listening line first."""
    app = create_app(config, data_dir)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    if announce:
        print(
            f"Novita simulator listening on http://{shown_host}:{bound_port} (data: {data_dir or 'memory'})", flush=True
        )
    server = uvicorn.Server(_uvicorn_config(app))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        app.state.account.flush()

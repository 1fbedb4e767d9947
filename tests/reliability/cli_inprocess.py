"""Run the real CLI entry point (`reconciler.cli:main`) in this process: exit status, stdout, stderr."""

from __future__ import annotations

import os
import socket
import sys
import traceback
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main


def run_main(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Like a user's shell: `main()` turns expected errors into a message and exit 1; anything else escapes
    as a traceback, which is returned in stderr with exit status 99 so tests can show it."""
    old_cwd, old_argv = os.getcwd(), sys.argv
    os.chdir(cwd)
    try:
        with CliRunner().isolation() as streams:
            sys.argv = ["reconciler", *args]
            code = 0
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # a bug: what a user would see as a traceback
                code = 99
                sys.stderr.write("Traceback (most recent call last):\n" + traceback.format_exc())
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = streams[0].getvalue(), streams[1].getvalue()
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def closed_port_url() -> str:
    """A loopback URL nothing listens on: any network call would fail loudly (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"

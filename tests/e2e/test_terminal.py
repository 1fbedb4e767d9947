"""The real CLI in a real terminal (a pseudo-terminal): the approval prompt, the legend, the live progress.

Each test starts `python -m reconciler apply --sim` with a pty as its terminal, reads the screen as a person
would, types the answer, and checks what happened (and what did not).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
FAST_SIM = {
    "training_queue_seconds": 0.05,
    "training_seconds": 0.3,
    "deploy_seconds": 0.05,
    "generation_queue_seconds": 0.02,
    "generation_seconds": 0.05,
    "random_seed": 0,
}


class Terminal:
    """A process on a pseudo-terminal of 40 rows × 140 columns; `screen` is everything it wrote, ANSI removed."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.raw = b""

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the other side closed: the process ended
            return False
        self.raw += chunk
        return bool(chunk)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen}")
        return self.screen

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.1):
            pass
        code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        os.close(self.master)
        return code


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "project"
    shutil.copytree(REPO / "manifests", root / "manifests")
    (tmp_path / "sim.json").write_text(json.dumps(FAST_SIM))
    # the pty's own size decides the width: a COLUMNS/LINES inherited from the runner (CI sets them) would not
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOVITA_", "RECONCILER_")) and k not in ("NO_COLOR", "COLUMNS", "LINES")
    }
    env.update(TERM="xterm-256color", RECONCILER_SIM_CONFIG=str(tmp_path / "sim.json"), PYTHONPATH=str(REPO))
    return root, env


def test_the_prompt_refused_changes_nothing(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    term = Terminal(["apply", "--sim"], root, env)
    screen = term.wait_for("Apply these changes? [y/N]: ")
    assert "  + LoraModel/alice-v1               train as alice-v1-e62b23ea (13 images)" in screen
    assert "Symbols: + create\n" in screen  # the legend, on a terminal only
    term.type("n\r")
    assert term.finish() == 0
    assert term.screen.endswith("Apply cancelled; nothing changed.\n")
    assert not (root / "state/sim.json").exists() and not (root / "outputs").exists()


def test_the_prompt_accepted_applies_with_a_live_progress_line(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    term = Terminal(["apply", "--sim", "--poll-interval", "0.05"], root, env)
    term.wait_for("Apply these changes? [y/N]: ")
    term.type("y\r")
    assert term.finish() == 0, term.screen
    screen = term.screen
    assert re.search(r"progress\s+[0-3]/3 done, \d+s elapsed", screen), screen
    assert "\nApply complete: 13 uploaded, 1 trained, 0 adopted, 2 generated (3 images), 0 failed in " in screen
    assert len(list((root / "outputs").rglob("*.png"))) == 2

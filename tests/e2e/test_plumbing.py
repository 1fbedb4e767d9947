"""The terminal plumbing: closed or non-terminal stdin, closed stdout, a reader that goes away (`| head`), a
terminal resized mid-apply, NO_COLOR, TERM=dumb. Each gets a clean behaviour or a one-line error, never a
traceback. The real CLI in a subprocess (under a pseudo-terminal where a terminal matters)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass

import pytest

from tests.e2e.harness import Project

pytestmark = pytest.mark.e2e

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m|\x1b\[1;3[0-7]m")


def shell(project: Project, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `script` with bash in the project, `rc` standing for `python -m reconciler`."""
    rc = f"{sys.executable} -m reconciler"
    return subprocess.run(
        ["bash", "-c", script.replace("rc ", rc + " ")],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Tty:
    code: int
    output: str


def on_a_terminal(project: Project, *args: str, env: dict[str, str] | None = None, resize: bool = False) -> Tty:
    """Run the CLI with a pseudo-terminal as stdin, stdout and stderr; `resize`: change the window size (and send
    SIGWINCH) a few times while it runs."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    environment = {**project.env, "TERM": "xterm-256color", **(env or {})}
    if "NO_COLOR" not in (env or {}):
        environment.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=project.root,
        env=environment,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output, began, resized = b"", time.monotonic(), 0
    while True:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if resize and resized < 8 and time.monotonic() - began > 0.5 + resized * 0.3:
            rows, cols = (15, 40) if resized % 2 else (50, 200)
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.killpg(proc.pid, signal.SIGWINCH)
            resized += 1
        if proc.poll() is not None and not ready:
            break
        assert time.monotonic() - began < 120, output.decode(errors="replace")
    os.close(master)
    if resize:
        assert resized >= 3, "the apply ended before the terminal could be resized"
    return Tty(proc.wait(timeout=30), output.decode(errors="replace"))


def test_closed_stdin_needs_auto_approve_and_says_so(project: Project) -> None:
    refused = shell(project, "rc apply <&-")
    assert refused.returncode == 2
    assert "Error: standard input is not a terminal, so apply cannot ask for approval: pass --auto-approve" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr and not (project.root / "state").exists()
    done = shell(project, "rc apply --auto-approve --poll-interval 0.05 <&-")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_pipe_as_stdin_needs_auto_approve(project: Project) -> None:
    refused = shell(project, "echo y | rc apply")
    assert refused.returncode == 2 and "pass --auto-approve" in refused.stderr and "Traceback" not in refused.stderr


def test_closed_stdout_the_work_is_done_and_nothing_is_printed(project: Project) -> None:
    plan = shell(project, "rc plan >&-")
    assert plan.returncode == 0 and plan.stderr == "", plan.stderr
    applied = shell(project, "rc apply --auto-approve --poll-interval 0.05 >&-")
    assert applied.returncode == 0 and "Traceback" not in applied.stderr, applied.stderr
    assert project.run("plan", "--detailed-exitcode").returncode == 0  # it did everything


def test_a_reader_that_goes_away_does_not_stop_the_apply(project: Project) -> None:
    """`apply | head -1`: the progress lines go nowhere once head exits, the apply finishes its work."""
    result = shell(project, "rc apply --auto-approve --poll-interval 0.05 | head -1; echo status=${PIPESTATUS[0]}")
    assert "status=0" in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert project.run("plan", "--detailed-exitcode").returncode == 0


@pytest.mark.parametrize("command", ["plan --json", "plan", "schema", "validate"])
def test_plan_into_head_ends_quietly(project: Project, command: str) -> None:
    """The reader is gone before the first byte is written (outputs this small fit in a pipe's buffer, so a
    `head -c 20` would read them after they were all written): the write meets a broken pipe."""
    result = shell(project, f"rc {command} | {{ exec 0<&-; sleep 1; }}; echo status=${{PIPESTATUS[0]}}")
    assert re.search(r"status=[01]$", result.stdout.strip()), result.stdout
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


def test_a_terminal_resized_mid_apply(project: Project) -> None:
    tty = on_a_terminal(project, "apply", "--auto-approve", "--poll-interval", "0.05", resize=True)
    assert tty.code == 0, tty.output
    assert "Traceback" not in tty.output
    unwrapped = tty.output.replace("\r\n", "")  # the closing line wraps to the (last) narrow width
    assert "Apply complete: 13 uploaded, 1 trained, 0 adopted, 2 generated (3 images), 0 failed in " in unwrapped


def test_no_color_on_a_terminal(project: Project) -> None:
    coloured = on_a_terminal(project, "plan")
    assert coloured.code == 0 and ANSI_COLOUR.search(coloured.output), coloured.output
    plain = on_a_terminal(project, "plan", env={"NO_COLOR": "1"})
    assert plain.code == 0 and "+ LoraModel/alice-v1" in plain.output
    assert not ANSI_COLOUR.search(plain.output), plain.output


def test_a_dumb_terminal_gets_plain_lines(project: Project) -> None:
    plan = on_a_terminal(project, "plan", env={"TERM": "dumb"})
    assert plan.code == 0 and "\x1b[" not in plan.output, plan.output
    applied = on_a_terminal(project, "apply", "--auto-approve", "--poll-interval", "0.05", env={"TERM": "dumb"})
    assert applied.code == 0, applied.output
    assert "\x1b[" not in applied.output  # no live display, no cursor movement: one line per event
    assert re.search(r"^\d\d:\d\d:\d\d LoraModel/alice-v1 training alice-v1-\w+ submitted", applied.output, re.M)

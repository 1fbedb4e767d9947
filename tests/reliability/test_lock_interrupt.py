"""The lock (one apply at a time, a clear holder, force-unlock, take-over after a kill) and Ctrl-C (state saved,
in-flight tasks listed, exit 130, the next apply resumes without resubmitting)."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.state import parse_state
from tests.e2e.harness import SimProcess, make_project, start_sim
from tests.reliability.projectgen import MODELS, distinct_images, make_generated_project
from tests.reliability.runner import created, kill, read_state, start_apply, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim", "--training-seconds", "2", "--ipm-txt2img", "0", "--ipm-img2img", "0")
    yield server
    server.stop()


def test_two_applies_started_together_one_runs_the_other_fails_fast(tmp_path: Path, sim: SimProcess) -> None:
    project = make_project(tmp_path, sim)
    a, b = start_apply(project, "a"), start_apply(project, "b")
    began = time.monotonic()
    codes = {}
    while len(codes) < 2 and time.monotonic() - began < 120:
        for name, run in (("a", a), ("b", b)):
            if name not in codes and run.proc.poll() is not None:
                codes[name] = (run.proc.returncode, time.monotonic() - began, run.stderr())
        time.sleep(0.02)
    assert sorted(c for c, _, _ in codes.values()) == [0, 1], codes
    loser = next(v for v in codes.values() if v[0] == 1)
    assert loser[1] < 10, f"the second apply took {loser[1]:.1f}s to give up"
    host = socket.gethostname()
    assert "Error: the state is locked by another reconciler (pid " in loser[2]
    assert f" on {host}, since " in loser[2] and "running 'apply'" in loser[2], loser[2]
    assert set(created(sim.requests())["trainings"].values()) == {1}


def test_a_lock_from_another_host_is_refused_until_force_unlock(tmp_path: Path, sim: SimProcess) -> None:
    project = make_project(tmp_path, sim)
    lock = project.root / "state/state.json.lock"
    lock.parent.mkdir(parents=True)
    info = {"pid": 4242, "host": "ci-runner-7", "since": "2024-01-01T00:00:00Z", "command": "apply"}
    lock.write_text(json.dumps(info))
    refused = project.apply()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "pid 4242 on ci-runner-7" in refused.stderr and "reconciler force-unlock" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert json.loads(lock.read_text()) == info  # refused, not overwritten
    assert sim.requests() == [] or not created(sim.requests())["trainings"]
    unlocked = project.run("force-unlock", "--yes")
    assert unlocked.returncode == 0 and "Lock removed (it was held by pid 4242 on ci-runner-7" in unlocked.stdout
    assert project.apply().returncode == 0


def test_a_lock_left_by_a_killed_apply_is_taken_over_with_a_note(tmp_path: Path, sim: SimProcess) -> None:
    project = make_project(tmp_path, sim)
    run = start_apply(project, "killed")
    assert wait_until(run, lambda: bool(read_state(project)))
    pid = run.proc.pid
    kill(run)
    assert json.loads((project.root / "state/state.json.lock").read_text())["pid"] == pid
    resumed = project.apply()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Note: the previous apply (pid {pid} on {socket.gethostname()}" in resumed.stderr
    assert "takes over and resumes its work" in resumed.stderr


@pytest.mark.slow
def test_sigint_saves_lists_in_flight_exits_130_and_resumes(tmp_path: Path, sim: SimProcess, figure: Any) -> None:
    project = make_generated_project(tmp_path, sim)
    run = start_apply(project, "interrupted")

    def training() -> bool:
        entries = read_state(project).get("resources", {}).values()
        return sum(1 for e in entries if e["kind"] == "LoraModel" and e["status"] == "training") >= 2

    assert wait_until(run, training), run.text()
    run.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code = run.proc.wait(timeout=60)
    stopped = time.monotonic() - sent
    err = run.stderr()
    assert code == 130, run.text()
    assert "Traceback" not in err
    assert "Interrupted: no new submissions; saving the state" in err
    state = parse_state((project.root / "state/state.json").read_bytes(), "state.json")
    flying = {a: e for a, e in state.resources.items() if e.status in ("training", "running", "submitting")}
    assert flying, "nothing was in flight"
    assert "Still running on Novita (the next apply collects them, nothing is resubmitted):" in err
    for addr, entry in flying.items():
        assert f"  {addr} ({entry.task_name or entry.task_id})" in err, err
    before = created(sim.requests())
    resumed = project.apply()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    counts = created(sim.requests())
    assert len(counts["trainings"]) == MODELS and set(counts["trainings"].values()) == {1}
    assert set(counts["generations"].values()) == {1} and len(counts["generations"]) == 10
    assert set(counts["uploads"].values()) == {1} and sum(counts["uploads"].values()) == distinct_images()
    assert {t for t in before["trainings"]} <= set(counts["trainings"])
    assert project.run("plan", "--detailed-exitcode").returncode == 0
    figure(
        f"interrupt: SIGINT with {len(flying)} task(s) in flight: exit 130 in {stopped:.1f}s, all listed, "
        "state saved; the next apply resubmitted 0"
    )

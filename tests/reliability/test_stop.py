"""Stopping an apply: Ctrl-C with hundreds of generations queued behind the images-per-minute throttle ends at
once; a second Ctrl-C does not lose the save; `--timeout` bounds the wait and the next apply resumes; a task that
shows no progress is reported instead of polled forever. Each checked against a simulator process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.state import parse_state
from tests.e2e.harness import API_KEY, REPO, Project, SimProcess, make_project, start_sim
from tests.reliability.runner import created, read_state, start_apply, wait_until

pytestmark = pytest.mark.e2e

QUEUED = 300  # generations, at the default 20 images per minute: the last would wait 15 minutes


def _queued_project(tmp: Path, sim: SimProcess, count: int = QUEUED) -> Project:
    """`count` one-image generations with a public LoRA: nothing to train, all throttled."""
    root = tmp / "project"
    (root / "manifests").mkdir(parents=True)
    docs = [
        "apiVersion: reconciler/v1\nkind: Generation\n"
        f"metadata: {{name: gen-{g:03d}}}\nspec:\n  model_name: sd_xl_base_1.0.safetensors\n"
        f"  prompt: picture number {g}\n  width: 128\n  height: 128\n  seed: {g + 1}\n"
        f"  output: ../outputs/gen-{g:03d}\n"
        for g in range(count)
    ]
    (root / "manifests" / "generations.yaml").write_text("---\n".join(docs))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVITA_", "RECONCILER_"))}
    env.update(NOVITA_API_KEY=API_KEY, NOVITA_API_BASE=sim.base_url, NO_COLOR="1", PYTHONPATH=str(REPO))
    return Project(root, sim, env)


def _count(project: Project, status: str) -> int:
    return sum(1 for e in read_state(project).get("resources", {}).values() if e.get("status") == status)


@pytest.fixture
def throttled_sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim", "--generation-seconds", "0.3")  # Novita's 20 images per minute
    yield server
    server.stop()


@pytest.mark.slow
def test_ctrl_c_with_hundreds_queued_behind_the_throttle_exits_at_once(
    tmp_path: Path, throttled_sim: SimProcess, figure: Any
) -> None:
    project = _queued_project(tmp_path, throttled_sim)
    run = start_apply(project, "scale")
    assert wait_until(run, lambda: _count(project, "succeeded") >= 10, timeout=120), run.text()
    run.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code = run.proc.wait(timeout=120)
    stopped = time.monotonic() - sent
    err = run.stderr()
    assert code == 130, run.text()
    assert "Traceback" not in err
    assert "Interrupted: no new submissions; saving the state" in err
    state = parse_state((project.root / "state/state.json").read_bytes(), "state.json")
    done = sum(1 for e in state.listed.values() if e.status == "succeeded")
    assert f"Not done yet, {QUEUED - done - len(state.running_remotely())} resources (the next apply does them)" in err
    for entry in state.running_remotely():
        assert f"  {entry.address} ({entry.task_id})" in err
    # the bug this guards against took the throttle's windows to run out: minutes here, an hour with 1,000 queued
    assert stopped < 15, f"{stopped:.1f}s from SIGINT to exit"
    figure(
        f"interrupt at scale: SIGINT with {QUEUED - done} of {QUEUED} generations queued behind the 20/min "
        f"throttle: exit 130 in {stopped:.2f}s, state saved, {len(state.running_remotely())} in flight listed"
    )


def test_a_second_ctrl_c_stops_at_once_and_the_save_is_kept(tmp_path: Path) -> None:
    """Two SIGINTs 50 ms apart while submits are on the wire (latency 1 s): the second does not wait for them, the
    state is saved whole, every task Novita made is either recorded with its id or recorded as a submit whose answer
    never came (resolved by the policy), and the next apply converges."""
    sim = start_sim(tmp_path / "sim", "--ipm-txt2img", "0", "--fault", "latency=1")
    try:
        project = _queued_project(tmp_path, sim, 40)
        run = start_apply(project, "twice", "--ipm-txt2img", "0")
        assert wait_until(run, lambda: _count(project, "submitting") >= 4, timeout=120), run.text()
        run.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        run.proc.send_signal(signal.SIGINT)
        code = run.proc.wait(timeout=60)
        assert code == 130, run.text()
        assert "Traceback" not in run.stderr()
        assert "Stopping now (submits on the wire are not waited for; they stay recorded); saving" in run.stderr()
        state = parse_state((project.root / "state/state.json").read_bytes(), "state.json")
        abandoned = [e.address for e in state.generations() if e.status in ("submitting", "unanswered")]
        assert abandoned, "no submit was on the wire at the second Ctrl-C"
        recorded = {e.task_id for e in state.generations() if e.task_id}
        made = [
            r["body_summary"] for r in sim.requests() if r["endpoint"] == "txt2img" and r["body_summary"].get("task_id")
        ]
        for summary in made:
            address = f"Generation/gen-{int(summary['prompt'].split()[-1]):03d}"
            entry = state.resources[address]
            assert summary["task_id"] in recorded or entry.status in ("submitting", "unanswered"), (address, entry)
        sim.faults(reset=True)
        resumed = project.apply("--ipm-txt2img", "0", timeout=300)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert project.run("plan", "--detailed-exitcode").returncode == 0
        final = parse_state((project.root / "state/state.json").read_bytes(), "state.json")
        counts = created(sim.requests())["generations"]
        for entry in final.generations():
            prompt = f"picture number {int(entry.name.split('-')[1])}"
            assert counts[prompt] <= 1 + entry.resubmits, (entry.name, counts[prompt], entry.resubmits)
    finally:
        sim.stop()


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim", "--training-seconds", "600", "--clock-control")
    yield server
    server.stop()


def _advance(sim: SimProcess, seconds: float) -> None:
    httpx.post(f"{sim.base_url}/_sim/clock", json={"advance": seconds}, timeout=10).raise_for_status()


def test_timeout_stops_waiting_saves_lists_and_the_next_apply_resumes(tmp_path: Path, slow_sim: SimProcess) -> None:
    project = make_project(tmp_path, slow_sim)
    began = time.monotonic()
    first = project.apply("--timeout", "3s")
    took = time.monotonic() - began
    assert first.returncode == 124, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert first.stdout.strip().splitlines()[-1].startswith("Apply timed out: 13 uploaded, 0 trained, ")
    assert "Stopped at the --timeout deadline (3s): the state is saved; the next apply resumes." in first.stderr
    assert "Still running on Novita (the next apply collects them, nothing is resubmitted):" in first.stderr
    assert "  LoraModel/alice-v1 (alice-v1-" in first.stderr
    assert "Not done yet, 2 resources (the next apply does them): Generation/alice-portraits, " in first.stderr
    assert took < 60, f"{took:.1f}s"  # the training takes 10 minutes: the deadline, not the training, ended it
    assert project.state()["resources"]["LoraModel/alice-v1"]["status"] == "training"
    _advance(slow_sim, 700)
    second = project.apply()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "~ LoraModel/alice-v1" in second.stdout
    assert list(created(slow_sim.requests())["trainings"].values()) == [1]
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_a_training_without_progress_is_reported_not_polled_forever(tmp_path: Path, slow_sim: SimProcess) -> None:
    """QUEUING for the first 2 minutes of a 10-minute training: with a 2 s ceiling it is reported as stalled,
    the generations that need it wait, exit 124; later the next apply collects it without resubmitting."""
    project = make_project(tmp_path, slow_sim)
    first = project.apply("--stall-timeout", "2s")
    assert first.returncode == 124, first.stdout + first.stderr
    assert "Stalled: LoraModel/alice-v1: training alice-v1-" in first.stderr
    assert ": no progress for 2s (still QUEUING); stopped waiting: it stays recorded as in flight" in first.stderr
    assert (
        "Left for the next apply: Generation/alice-portraits: LoraModel/alice-v1 is still training "
        "(no progress lately, see above)" in first.stderr
    )
    summary = first.stdout.strip().splitlines()[-1]
    assert summary.startswith("Apply timed out: 13 uploaded, 0 trained, 0 adopted, 0 generated (0 images), 0 failed")
    assert ", 1 stalled, 2 left for the next apply (waiting for trainings in flight) in " in summary, summary
    _advance(slow_sim, 700)
    second = project.apply()
    assert second.returncode == 0, second.stdout + second.stderr
    assert list(created(slow_sim.requests())["trainings"].values()) == [1]

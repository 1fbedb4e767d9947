"""Unanswered creates through the real CLI and a simulator process: a training create that Novita made but
answered with an error (a "ghost") is found by its name, even when the listing lags, and even after a kill in the
middle of the look-ups; it is never paid for twice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.harness import QUICK_WAITS, make_project, start_sim, submissions, wait_for

pytestmark = pytest.mark.e2e


def _trainings_listed(base_url: str) -> list[str]:
    import httpx

    names: list[str] = []
    cursor = ""
    while True:
        params: dict[str, str | int] = {"pagination.limit": 100}
        if cursor:
            params["pagination.cursor"] = cursor
        page = httpx.get(f"{base_url}/v3/training", params=params, headers={"Authorization": "Bearer k"}).json()
        names += [t["task_name"] for t in page["tasks"]]
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            return names


def test_a_ghost_training_create_is_found_by_name_despite_a_lagging_listing(tmp_path: Path) -> None:
    """Every training create is made and answered 500 / CREATE_TASK_FAILED / 503 / dropped; the listing shows a
    new training only 2 s later. The look-ups (at once, then after 1, 2 and 4 s) find it: one training."""
    sim = start_sim(tmp_path / "sim", "--fault", "training-create:ghost=1", "--fault", "list-lag=2")
    try:
        project = make_project(tmp_path, sim)
        result = project.apply()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "LoraModel/alice-v1 no answer to the submit of alice-v1-" in result.stdout
        assert "looking it up by name before anything is sent again" in result.stdout
        assert "is in the account (" in result.stdout and "taking it, not submitting again" in result.stdout
        assert result.stdout.strip().splitlines()[-1].startswith("Apply complete: 13 uploaded, 1 trained, ")
        counts = submissions(sim.requests())
        assert list(counts["trainings"].values()) == [1], counts["trainings"]
        sim.faults(reset=True)
        assert sorted(_trainings_listed(sim.base_url)) == sorted(counts["trainings"])
        entry = project.state()["resources"]["LoraModel/alice-v1"]
        assert (entry["status"], entry["unanswered_submits"]) == ("succeeded", 1)
        assert project.run("plan", "--detailed-exitcode").returncode == 0
    finally:
        sim.stop()


def test_a_kill_during_the_look_ups_resolves_the_same_way(tmp_path: Path) -> None:
    """The unanswered create is recorded before the look-ups start, so an apply killed while it looks (here the
    listing lags by a minute) leaves `unanswered`; the next apply finds the training by name and waits for it."""
    sim = start_sim(tmp_path / "sim", "--fault", "training-create:ghost=1", "--fault", "list-lag=60")
    try:
        project = make_project(tmp_path, sim)
        proc = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
        state_file = project.root / "state/state.json"

        def unanswered() -> bool:
            try:
                entries = json.loads(state_file.read_text())["resources"]
            except (OSError, ValueError, KeyError):
                return False
            return entries.get("LoraModel/alice-v1", {}).get("status") == "unanswered"

        assert wait_for(unanswered, timeout=60), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        sim.faults(reset=True)  # the listing catches up; no more ghosts
        plan = project.run("plan")
        assert "~ LoraModel/alice-v1               training alice-v1-" in plan.stdout, plan.stdout  # found: resume
        assert "+ LoraModel/alice-v1" not in plan.stdout
        resumed = project.apply()
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert list(submissions(sim.requests())["trainings"].values()) == [1]
        assert project.run("plan", "--detailed-exitcode").returncode == 0
    finally:
        sim.stop()


@pytest.mark.slow  # 5 rounds of 4 look-ups (over 1.75 s each at the quick waits)
def test_an_unanswered_create_not_in_the_account_is_submitted_again_after_the_look_ups(tmp_path: Path) -> None:
    """A 500 that really made nothing: the look-ups find nothing, then it is submitted again, once. The pauses
    between the look-ups at a quarter of their length (the first test here keeps them whole)."""
    sim = start_sim(tmp_path / "sim", "--fault", "training-create:5xx=1")
    try:
        project = make_project(tmp_path, sim)
        project.env.update(QUICK_WAITS)
        first = project.apply()
        assert first.returncode == 1
        assert "Error: LoraModel/alice-v1: no answer to 4 submits of alice-v1-" in first.stderr
        assert "it stays recorded as unanswered: the next apply looks it up again before submitting" in first.stderr
        assert first.stdout.count("is not in the account after the look-ups: submitting it again") == 3
        assert submissions(sim.requests())["trainings"] == {}
        sim.faults(reset=True)
        plan = project.run("plan")
        assert "+ LoraModel/alice-v1" in plan.stdout
        assert "got no answer and the account does not list it: look it up again" in plan.stdout
        second = project.apply()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "an earlier submit of alice-v1-" in second.stdout and "submitting it again" in second.stdout
        assert list(submissions(sim.requests())["trainings"].values()) == [1]
    finally:
        sim.stop()


def test_a_lagging_listing_never_makes_a_trained_model_look_lost(tmp_path: Path) -> None:
    """The training list shows a new training only a minute after its create: right after the apply, the plan
    asks for the state's trainings by id instead of retraining them as vanished (which would pay twice)."""
    sim = start_sim(tmp_path / "sim", "--fault", "list-lag=60")
    try:
        project = make_project(tmp_path, sim)
        applied = project.apply()
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert _trainings_listed(sim.base_url) == []  # not listed yet
        plan = project.run("plan", "--detailed-exitcode")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "No changes. Novita matches the manifests." in plan.stdout
        assert list(submissions(sim.requests())["trainings"].values()) == [1]
    finally:
        sim.stop()

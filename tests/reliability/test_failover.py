"""A PostgreSQL state that goes away mid-apply (a failover, a maintenance restart): the real CLI in a subprocess
against the simulator over a socket and a real PostgreSQL server this module starts, stops and starts again.

- restarted while trainings are in flight, and stopped for 30 s while generations are submitted: the apply rides
  it out (exit 0), nothing is paid twice (creates counted in the simulator's request log), the final plan is empty;
- stopped for longer than the reconnect window: exit 1 naming the journal, which holds the task id the lost commit
  would have recorded; the next apply replays it and converges, nothing paid twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ReconcilerError
from reconciler.state.postgres import PostgresBackend
from tests.e2e.harness import Project, SimProcess, make_project, start_sim
from tests.reliability.projectgen import MODELS, make_generated_project
from tests.reliability.runner import Running, created, read_state, start_apply
from tests.servers import SUPERUSER_PASSWORD, Cluster, start_postgres, start_s3

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GENERATIONS = 6
SIM = ("--generation-seconds", "1.5", "--ipm-txt2img", "0", "--ipm-img2img", "0")
POLLS = ("task-result", "training-get", "training-list")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A server of this test's own: the others' tests must not see it stop."""
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim", "--training-seconds", "1", *SIM)
    yield server
    server.stop()


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[SimProcess]:
    """Trainings that take a few seconds, so a restart meets them in flight."""
    server = start_sim(tmp_path / "sim", "--training-seconds", "4", *SIM)
    yield server
    server.stop()


def project_on(cluster: Cluster, tmp: Path, sim: SimProcess, **env: str) -> Project:
    project = make_generated_project(tmp, sim, GENERATIONS)
    project.use_postgres(cluster.url(password=None, db=cluster.database()), SUPERUSER_PASSWORD)
    project.env.update(env)
    return project


def statuses(project: Project, kind: str) -> list[str]:
    """The statuses of the state's entries of `kind` now, read on a connection of its own ([] while it is down)."""
    assert project.state_url is not None
    try:
        with PostgresBackend(project.state_url) as backend:
            state = backend.read()
    except ReconcilerError:
        return []
    return [e.status for e in state.resources.values() if e.kind == kind]


def wait_while_running(run: Running, predicate: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert run.proc.poll() is None, f"the apply ended before the failover:\n{run.text()}"
        assert time.monotonic() < deadline, f"timed out waiting:\n{run.text()}"
        time.sleep(0.02)


def polls(sim: SimProcess) -> int:
    return sum(1 for r in sim.requests() if r.get("endpoint") in POLLS)


def assert_paid_once(project: Project) -> None:
    counts = created(project.sim.requests())
    assert len(counts["trainings"]) == MODELS and set(counts["trainings"].values()) == {1}, counts["trainings"]
    assert len(counts["generations"]) == GENERATIONS and set(counts["generations"].values()) == {1}, counts
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert not list((project.root / "state" / "journal").glob("*.jsonl")), "a journal was left behind"


def test_a_restart_while_trainings_are_in_flight_is_ridden_out(
    tmp_path: Path, cluster: Cluster, slow_sim: SimProcess
) -> None:
    project = project_on(cluster, tmp_path, slow_sim)
    run = start_apply(project, "restart")
    wait_while_running(run, lambda: "training" in statuses(project, "LoraModel"))
    cluster.halt()
    cluster.resume()
    assert run.proc.wait(timeout=180) == 0, run.text()
    assert "lost the connection to the state's database" in run.text(), run.text()
    assert "reconnected to the state's database after" in run.text(), run.text()
    assert_paid_once(project)


def test_stopped_for_30_s_while_generations_are_submitted(tmp_path: Path, cluster: Cluster, sim: SimProcess) -> None:
    project = project_on(cluster, tmp_path, sim)
    run = start_apply(project, "outage")
    sim.faults(latency=0.2)  # creates and polls slower, so the outage meets submits on their way
    wait_while_running(run, lambda: any(s in ("submitting", "running") for s in statuses(project, "Generation")))
    cluster.halt()
    before = polls(sim)
    time.sleep(30)
    assert run.proc.poll() is None, f"the apply gave up during a 30 s outage:\n{run.text()}"
    assert polls(sim) > before, "the apply stopped polling while the database was away"
    cluster.resume()
    sim.faults(reset=True)
    assert run.proc.wait(timeout=180) == 0, run.text()
    assert "reconnecting for up to 60s; nothing new is submitted meanwhile" in run.text(), run.text()
    assert_paid_once(project)


def test_longer_than_the_window_exits_naming_the_journal_and_the_next_apply_replays_it(
    tmp_path: Path, cluster: Cluster, sim: SimProcess
) -> None:
    project = project_on(cluster, tmp_path, sim, RECONCILER_RECONNECT_WINDOW="3")
    run = start_apply(project, "lost")
    # once the uploads are done and a training runs (at full speed: 120 requests), every request takes 2 s: a
    # generation's create then comes back with its task id after the server went
    wait_while_running(run, lambda: "training" in statuses(project, "LoraModel"))
    sim.faults(latency=2.0)
    wait_while_running(run, lambda: "submitting" in statuses(project, "Generation"))
    time.sleep(0.3)  # its own commit before the create is written (it takes milliseconds); the create is on the wire
    cluster.halt()
    assert run.proc.wait(timeout=120) == 1, run.text()
    journals = list((project.root / "state" / "journal").glob("*.jsonl"))
    assert len(journals) == 1, run.text()
    name = f"state/journal/{journals[0].name}"
    error = run.stderr()
    assert f"its paid task ids are kept in the journal {name}" in error, error
    assert "reconnecting for 3s did not succeed (state.reconnect_window: 3s" in error, error
    lines = [json.loads(line) for line in journals[0].read_text().splitlines()]
    journaled = {line["entry"]["task_id"] for line in lines if line["entry"]["kind"] == "Generation"}
    assert journaled, lines
    assert SUPERUSER_PASSWORD not in journals[0].read_text() and "sk-" not in journals[0].read_text()

    cluster.resume()
    sim.faults(reset=True)
    done = project.apply(timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    state = project.state()
    recorded = {e["task_id"] for e in state["resources"].values() if e["kind"] == "Generation"}
    assert journaled <= recorded  # the journal's task ids were recorded, not submitted again
    assert_paid_once(project)


def test_an_outputs_remote_stopped_mid_apply_leaves_the_images_on_disk_and_the_next_apply_stores_them(
    tmp_path: Path, slow_sim: SimProcess
) -> None:
    s3 = start_s3(tmp_path / "moto")
    try:
        s3.make_bucket("outputs")
        project = make_project(tmp_path, slow_sim)
        project.env.update(s3.env(), RECONCILER_OUTPUTS_REMOTE="s3://outputs/loras")
        run = start_apply(project, "store")
        wait_while_running(run, lambda: "training" in json.dumps(read_state(project).get("resources")))
        s3.stop()  # the store goes away while the training runs: the generations' stores fail
        assert run.proc.wait(timeout=180) == 1, run.text()
        out = run.text()
        for name, images in (
            ("alice-portraits", "alice-portraits-1.png, alice-portraits-2.png"),
            ("alice-restyle", "alice-restyle-1.jpg"),
        ):
            assert (
                f"Generation/{name} failed: RECONCILER_OUTPUTS_REMOTE s3://outputs/loras: cannot list it: Could not "
                "connect to the endpoint URL"
            ) in out, out
            assert (
                f"not stored yet: {images} (kept on disk; the next apply stores them, nothing is generated again)"
                in out
            )
            assert len(list((project.root / "outputs" / name).glob(f"{name}-*"))) == images.count(",") + 1

        s3 = start_s3(tmp_path / "moto", int(s3.endpoint.rsplit(":", 1)[1]))  # back where it was, empty
        s3.make_bucket("outputs")
        done = project.apply()
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Generation/alice-portraits stored 2 images in the outputs remote" in done.stdout, done.stdout
        assert "Generation/alice-restyle stored 1 image in the outputs remote" in done.stdout, done.stdout
        counts = created(slow_sim.requests())
        assert set(counts["trainings"].values()) == {1} and sorted(counts["generations"].values()) == [1, 1], counts
        keys = [k for k in s3.keys("outputs") if "/files/sha256/" in k]
        assert len(keys) == 3, keys
        plan = project.run("plan", "--detailed-exitcode")
        assert plan.returncode == 0, plan.stdout + plan.stderr
    finally:
        s3.stop()

"""Team and CI, end to end: two runners (fresh copies of the project, no state/ and no outputs/) sharing the state
in a real PostgreSQL server and the images in an outputs remote (moto's S3 server, the real S3 client), the
real CLI in subprocesses against the simulator over a socket, configured exactly as README's "Team and CI"
section says: reconciler.yaml in the repository, PGPASSWORD and AWS_* from the CI's secrets."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from reconciler.state import State
from reconciler.state.postgres import PostgresBackend
from tests.e2e.harness import API_KEY, Project, SimProcess, make_project, start_sim, submissions
from tests.reliability.runner import Running, start_apply, wait_until
from tests.servers import S3_KEY_ID, S3_SECRET, SUPERUSER_PASSWORD, Cluster, S3Server

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests"
PORTRAITS = "a photo of ohwx woman, cinematic lighting"
RESTYLE = "an oil painting of ohwx woman, impressionist style"
NAMES = {"alice-portraits": PORTRAITS, "alice-restyle": RESTYLE}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim", "--ipm-txt2img", "0", "--ipm-img2img", "0")
    yield server
    server.stop()


class Team:
    """The repository (manifests + reconciler.yaml) and the CI's secrets; `runner()` is a fresh clone."""

    def __init__(self, tmp: Path, sim: SimProcess, postgres: Cluster, s3: S3Server, bucket: str) -> None:
        self.tmp, self.sim, self.s3, self.bucket = tmp, sim, s3, bucket
        self.db = postgres.database()
        self.url = postgres.url(password=None, db=self.db)  # no password in the repository
        self.repo = tmp / "repo"
        shutil.copytree(EXAMPLE, self.repo / "manifests")
        (self.repo / "reconciler.yaml").write_text(
            f"state:\n  url: {self.url}\noutputs:\n  remote: s3://{bucket}/loras\n"
        )
        self.runners = 0
        self.outputs: list[str] = []  # everything every command printed

    def runner(self) -> Project:
        self.runners += 1
        root = self.tmp / f"runner{self.runners}"
        project = make_project(root, self.sim, self.repo / "manifests")
        shutil.copy(self.repo / "reconciler.yaml", project.root / "reconciler.yaml")
        project.env.update(self.s3.env(), PGPASSWORD=SUPERUSER_PASSWORD)
        return project

    def run(self, project: Project, *args: str, timeout: float = 120) -> Any:
        done = project.run(*args, timeout=timeout)
        self.outputs.append(done.stdout + done.stderr)
        return done

    def state(self) -> State:
        with PostgresBackend(self.url.replace("postgres@", f"postgres:{SUPERUSER_PASSWORD}@")) as backend:
            return backend.read()

    def edit(self, old: str, new: str, *projects: Project) -> None:
        for root in (self.repo, *(p.root for p in projects)):
            path = root / "manifests/generations.yaml"
            path.write_text(path.read_text().replace(old, new))


@pytest.fixture
def team(tmp_path: Path, sim: SimProcess, postgres: Cluster, s3: S3Server, bucket: str) -> Team:
    return Team(tmp_path, sim, postgres, s3, bucket)


def _images(project: Project) -> dict[str, bytes]:
    return {p.relative_to(project.root).as_posix(): p.read_bytes() for p in (project.root / "outputs").rglob("*.*")}


def _lock_free(team: Team) -> bool:
    with psycopg.connect(team.url, password=SUPERUSER_PASSWORD, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone()
    return row is not None and row[0] == 0


def test_two_runners_share_the_state_and_the_images(team: Team, figure: Any) -> None:
    a = team.runner()
    applied = team.run(a, "apply", "--auto-approve", "--poll-interval", "0.05")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete: 13 uploaded, 1 trained, 0 adopted, 2 generated (3 images), 0 failed" in applied.stdout
    assert not (a.root / "state/state.json").exists(), "the state went to PostgreSQL, not to a file"
    assert team.state().serial > 0 and len(team.state().listed) == 4

    b = team.runner()  # a fresh clone: no state/, no outputs/
    before = len(team.sim.requests())
    plan = team.run(b, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert plan.stdout == (
        "Refreshing: 1 page of trainings (1 task, 1 ours).\n\n"
        "No changes. Novita matches the manifests.\n\n"
        "Outputs: 3 images to fetch from the outputs remote (free) for Generation/alice-portraits, "
        "Generation/alice-restyle: `reconciler pull` or `reconciler apply` writes them.\n"
    )
    endpoints = {r["endpoint"] for r in team.sim.requests()[before:]}
    assert endpoints == {"training-list"}, endpoints  # no submission, no status call: nothing paid

    pulled = team.run(b, "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert pulled.stdout == (
        "Generation/alice-portraits: fetched 2 images\n"
        "Generation/alice-restyle: fetched 1 image\n"
        f"Pulled 3 images from s3://{team.bucket}/loras (0 already here).\n"
    )
    assert _images(b) == _images(a)  # byte-identical, sidecars included
    assert team.run(b, "plan", "--detailed-exitcode").stdout.endswith("No changes. Novita matches the manifests.\n")
    assert submissions(team.sim.requests())["generations"].total() == 2
    figure(f"two runners: B planned with {len(endpoints)} kind of request (training-list), pulled 3 images identical")


def test_two_applies_at_once_one_runs_the_other_names_the_holder_or_waits(team: Team, figure: Any) -> None:
    a, b = team.runner(), team.runner()
    assert team.run(a, "apply", "--auto-approve", "--poll-interval", "0.05").returncode == 0
    team.edit("seed: 123", "seed: 321", a, b)  # work for both: one generation to run again
    team.sim.faults(latency=0.05)
    runs = {"a": start_apply(a, "a"), "b": start_apply(b, "b")}
    began = time.monotonic()
    ended: dict[str, tuple[int, float]] = {}
    while len(ended) < 2 and time.monotonic() - began < 120:
        for name, run in runs.items():
            if name not in ended and run.proc.poll() is not None:
                ended[name] = (run.proc.returncode, time.monotonic() - began)
        time.sleep(0.02)
    assert sorted(code for code, _ in ended.values()) == [0, 1], {n: r.text() for n, r in runs.items()}
    loser = next(n for n, (code, _) in ended.items() if code == 1)
    assert ended[loser][1] < 10, f"the refused apply took {ended[loser][1]:.1f}s to give up"
    err = runs[loser].stderr()
    assert "Error: the state postgresql://postgres@127.0.0.1:" in err and "is locked by another reconciler (pid " in err
    assert " as " in err and "running 'apply'). Wait for it to finish, or pass --lock-timeout to wait." in err
    assert err.count("\n") == 1, err

    # with --lock-timeout the second waits, then finds nothing to do
    team.edit("seed: 321", "seed: 777", a, b)
    first = start_apply(a, "a2")
    assert wait_until(first, lambda: not _lock_free(team), timeout=60)
    waited = team.run(b, "apply", "--auto-approve", "--lock-timeout", "120", "--poll-interval", "0.05")
    assert first.proc.wait(timeout=120) == 0, first.text()
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "No changes. Novita matches the manifests." in waited.stdout
    counts = submissions(team.sim.requests())["generations"]
    # the portraits once per seed (123, 321, 777), the restyle once: nothing ran twice
    assert counts == {PORTRAITS: 3, RESTYLE: 1}, counts
    figure(f"two applies at once on PostgreSQL: one ran, the other refused in {ended[loser][1]:.1f}s naming the holder")


def test_a_killed_apply_is_taken_over_within_seconds_and_nothing_is_paid_twice(team: Team, figure: Any) -> None:
    a = team.runner()
    assert team.run(a, "apply", "--auto-approve", "--poll-interval", "0.05").returncode == 0
    b = team.runner()
    team.edit("seed: 123", "seed: 456", a, b)
    team.edit("strength: 0.55", "strength: 0.6", a, b)
    team.sim.faults(latency=0.1)
    run: Running = start_apply(a, "killed")

    def submitted() -> bool:
        return any(
            e.kind == "Generation" and e.status == "running" and e.task_id for e in team.state().resources.values()
        )

    assert wait_until(run, submitted, timeout=60), run.text()
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    killed = time.monotonic()
    assert wait_until_free(team, timeout=10)
    freed = time.monotonic() - killed
    team.sim.faults(reset=True)
    resumed = team.run(b, "apply", "--auto-approve", "--poll-interval", "0.05")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Note: the previous apply (pid {run.proc.pid} on " in resumed.stderr
    assert "takes over and resumes its work" in resumed.stderr
    counts = submissions(team.sim.requests())
    # once per definition; a submit the kill cut on the wire (a loaded machine's timing) is submitted again by B, as
    # documented, and counted in the state: never paid twice uncounted
    entries = {entry.name: entry for entry in team.state().generations()}
    resubmits = {prompt: entries[name].resubmits for name, prompt in NAMES.items()}
    for prompt in (PORTRAITS, RESTYLE):
        assert 2 <= counts["generations"][prompt] <= 2 + resubmits[prompt], (counts["generations"], resubmits)
    assert set(counts["trainings"].values()) == {1} and set(counts["uploads"].values()) == {1}
    assert team.run(b, "plan", "--detailed-exitcode").returncode == 0
    assert team.run(a, "pull").returncode == 0 and team.run(b, "pull").returncode == 0  # b: a's history too
    assert _images(a) == _images(b)
    cut = sum(resubmits.values())
    figure(
        f"SIGKILLed apply on PostgreSQL: lock free {freed:.2f}s after the kill; B finished it, 0 paid twice uncounted "
        f"({cut} submit(s) cut on the wire, resubmitted and counted)"
    )


def wait_until_free(team: Team, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _lock_free(team):
            return True
        time.sleep(0.02)
    return False


def test_team_secrets_are_written_nowhere(team: Team) -> None:
    a = team.runner()
    assert team.run(a, "apply", "--auto-approve", "--poll-interval", "0.05").returncode == 0
    assert team.run(a, "plan", "--out", "plan.json").returncode == 0
    b = team.runner()
    assert team.run(b, "pull").returncode == 0
    assert team.run(b, "state", "pull").returncode == 0
    secrets = [SUPERUSER_PASSWORD, S3_SECRET, S3_KEY_ID, API_KEY]
    for text in team.outputs:
        for secret in secrets:
            assert secret not in text
    for root in (a.root, b.root):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in secrets:
                    assert secret.encode() not in data, path
    client = boto3.client(
        "s3",
        endpoint_url=team.s3.endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    for obj in client.list_objects_v2(Bucket=team.bucket)["Contents"]:
        body = client.get_object(Bucket=team.bucket, Key=obj["Key"])["Body"].read()
        for secret in secrets:
            assert secret.encode() not in body, obj["Key"]
    with psycopg.connect(team.url, password=SUPERUSER_PASSWORD, autocommit=True) as conn:
        rows = conn.execute("SELECT data::text FROM reconciler_entries").fetchall()
        rows += conn.execute("SELECT row_to_json(l)::text FROM reconciler_locks l").fetchall()
    for (text,) in rows:
        for secret in secrets:
            assert secret not in text


def test_the_readme_team_and_ci_workflow(team: Team) -> None:
    """README's GitHub Actions jobs, in order, each on a fresh runner: merge (apply --no-wait), schedule (apply
    collects), pull request (plan --format markdown, exit 0), then a laptop (pull)."""
    fast = ("--poll-interval", "0.05")  # the simulator's tasks take a second, not minutes
    merge = team.runner()
    applied = team.run(merge, "apply", "--auto-approve", "--no-wait", "--lock-timeout", "600", *fast)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert not (merge.root / "outputs").exists() or not list((merge.root / "outputs").rglob("*.png"))
    scheduled = team.runner()
    collected = team.run(scheduled, "apply", "--auto-approve", "--lock-timeout", "600", "--timeout", "12m", *fast)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "2 generated (3 images), 0 failed" in collected.stdout
    pr = team.runner()
    planned = team.run(pr, "plan", "--detailed-exitcode", "--format", "markdown")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert planned.stdout.startswith("### reconciler plan\n\n**No changes. Novita matches the manifests.**")
    assert "_Outputs: 3 images to fetch from the outputs remote (free) for Generation/alice-portraits" in planned.stdout
    laptop = team.runner()
    pulled = team.run(laptop, "pull")
    assert pulled.returncode == 0 and pulled.stdout.endswith(
        f"Pulled 3 images from s3://{team.bucket}/loras (0 already here).\n"
    )
    assert _images(laptop) == _images(scheduled)
    assert not any((r.root / "state/state.json").exists() for r in (merge, scheduled, pr, laptop))
    counts = submissions(team.sim.requests())
    assert set(counts["trainings"].values()) == {1} and set(counts["generations"].values()) == {1}

"""Bench 6: team state and outputs remote on the converged 1x project of synth.py (9,800 images, 1,400 resources).

- no-op `reconciler plan` with the state in PostgreSQL next to the same plan with the state file
  (target: PostgreSQL <= 1.1x the file backend);
- the median per-step commit of the applier (one entry changed, prepare + write, as apply does after every
  upload, submit, finish and download) at 1x (9,800 images): PostgreSQL next to the file backend (target <= 20 ms);
- a no-op plan's requests to an outputs remote (moto's S3 server) holding the 1,000 generations (target: a
  handful of listings, not one request per image).

The PostgreSQL cluster runs with fsync on (a real server's durability); the state is copied into it with
`reconciler state migrate`, the remote filled by `reconciler apply` (it stores what the remote lacks).

    python bench/bench_team.py [--scale 1] [--runs 5] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import REPO, WORK, cli_env, converged_project, figure, reconciler, start_sim, timed

sys.path.insert(0, str(REPO))

from tests.servers import SUPERUSER_PASSWORD, running_postgres, start_s3


@dataclass
class TeamResult:
    scale: float
    file_plan_s: float
    pg_plan_s: float
    file_commit_ms: float
    pg_commit_ms: float
    images: int
    generations: int
    remote_requests: list[str]


def _median_plan(root: Path, env: dict[str, str], runs: int) -> float:
    warm = timed(reconciler("plan", "--detailed-exitcode"), root, env)
    if warm.returncode != 0:
        raise RuntimeError(f"the project has changes:\n{warm.stdout[-2000:]}{warm.stderr[-2000:]}")
    times = []
    for _ in range(runs):
        r = timed(reconciler("plan", "--detailed-exitcode"), root, env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        times.append(r.seconds)
    return statistics.median(times)


def _commit_ms(store: object, steps: int) -> float:
    """Median of `steps` commits, each after one step's change (a generation's image recorded, or an upload)."""
    from reconciler.state import FileRecord, GenerationEntry, ImageRecord, State

    state: State = store.state  # type: ignore[attr-defined]
    gens = [e for e in state.resources.values() if isinstance(e, GenerationEntry)]
    hashes = list(state.images)
    times = []
    for n in range(steps):
        if n % 2:
            gen = gens[n % len(gens)]
            gen.files = [*gen.files[:-1], FileRecord(path=gen.files[-1].path, sha256=f"{n:064x}")] if gen.files else []
        else:
            key = hashes[n % len(hashes)]
            old = state.images[key]
            state.images[key] = ImageRecord(assets_id=old.assets_id, format=old.format, uploaded_at=f"step {n}")
        t0 = time.perf_counter()
        store.write(store.prepare())  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(scale: float = 1.0, runs: int = 5, steps: int = 200) -> TeamResult:
    proj = converged_project(scale)
    work = WORK / f"team-{scale:g}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with running_postgres(fsync=True) as pg, start_sim(proj.root / "simdata") as sim:
        url = pg.url(password=None, db=pg.database())
        env = cli_env(sim)
        file_plan = _median_plan(proj.root, env, runs)
        pg_env = {**env, "PGPASSWORD": SUPERUSER_PASSWORD}
        migrated = timed(reconciler("state", "migrate", "--to", url), proj.root, pg_env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        pg_env["RECONCILER_STATE_URL"] = url
        pg_plan = _median_plan(proj.root, pg_env, runs)

        # per-step commits, on copies of the state (the converged project keeps its own)
        from reconciler.state.file import StateStore
        from reconciler.state.postgres import PostgresBackend

        shutil.copy(proj.root / "state/state.json", work / "state.json")
        file_ms = _commit_ms(StateStore(work / "state.json"), steps)
        os.environ["PGPASSWORD"] = SUPERUSER_PASSWORD
        with PostgresBackend(url) as backend, backend.lock(timeout=0, command="bench"):
            store = backend.open()
            images, generations = len(store.state.images), len(store.state.generations())
            pg_ms = _commit_ms(store, steps)

        # the outputs remote: filled by an apply (it stores what the remote lacks), then a no-op plan's requests
        s3 = start_s3(work / "moto")
        try:
            s3.make_bucket("bench")
            remote_env = {**pg_env, **s3.env(), "RECONCILER_OUTPUTS_REMOTE": "s3://bench/outputs"}
            filled = timed(reconciler("apply", "--auto-approve"), proj.root, remote_env)
            assert filled.returncode == 0, filled.stdout[-2000:] + filled.stderr[-2000:]
            before = len(s3.requests())
            noop = timed(reconciler("plan", "--detailed-exitcode"), proj.root, remote_env)
            assert noop.returncode == 0 and "Outputs:" not in noop.stdout, noop.stdout[-2000:]
            requests = s3.requests()[before:]
        finally:
            s3.stop()
    return TeamResult(scale, file_plan, pg_plan, file_ms, pg_ms, images, generations, requests)


def report(r: TeamResult) -> bool:
    print(f"Bench 6: team state and outputs remote at {r.scale:g}x ({r.images} images, {r.generations} generations)")
    ratio = r.pg_plan_s / r.file_plan_s
    ok_plan = ratio <= 1.1
    figure(
        "no-op plan, PostgreSQL vs file (median)",
        f"{r.pg_plan_s:.2f} vs {r.file_plan_s:.2f} s = {ratio:.2f}x",
        "<= 1.1x the file backend",
        ok_plan,
    )
    ok_commit = r.pg_commit_ms <= 20
    figure(
        "per-step commit, PostgreSQL vs file (median)",
        f"{r.pg_commit_ms:.1f} vs {r.file_commit_ms:.1f} ms",
        "PostgreSQL <= 20 ms",
        ok_commit,
    )
    lists = sum(1 for line in r.remote_requests if "list-type=2" in line)
    ok_remote = lists == len(r.remote_requests) and lists <= 5
    figure(
        f"no-op plan's requests to the outputs remote ({r.generations} generations)",
        f"{len(r.remote_requests)} ({lists} listings)",
        "a handful of listings",
        ok_remote,
    )
    return ok_plan and ok_commit and ok_remote


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    report(measure(args.scale, args.runs, args.steps))


if __name__ == "__main__":
    main()

"""Bench 1: no-op `reconciler plan` on a converged project (warm stat cache, refresh against the simulator).

Targets: whole-process wall time <= 2 s and peak RSS <= 200 MB on a 2-core machine; HTTP requests = the list
pages only (ceil(tasks / 100) `GET /v3/training`), counted from the simulator's request log.

    python bench/bench_noop.py [--scale 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter
from dataclasses import dataclass

from common import cli_env, converged_project, figure, reconciler, start_sim, timed


@dataclass
class NoopResult:
    scale: float
    median_s: float
    max_rss_mb: float
    requests: Counter[str]
    expected_pages: int
    setup_s: float
    resources: int


def measure(scale: float, runs: int = 5) -> NoopResult:
    proj = converged_project(scale)
    with start_sim(proj.root / "simdata") as sim:
        env = cli_env(sim)
        warm = timed(reconciler("plan", "--detailed-exitcode"), proj.root, env)  # warms the stat cache
        if warm.returncode != 0:
            raise RuntimeError(f"the converged project has changes:\n{warm.stdout[-2000:]}{warm.stderr[-2000:]}")
        times, rss = [], []
        requests: Counter[str] = Counter()
        for _ in range(runs):
            before = sim.log_size()
            r = timed(reconciler("plan", "--detailed-exitcode"), proj.root, env)
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
            times.append(r.seconds)
            rss.append(r.max_rss_mb)
            requests = Counter(rec["endpoint"] for rec in sim.log(before))
    tasks = proj.shape.foreign + proj.shape.datasets
    res = proj.shape.datasets * 2 + proj.shape.generations
    return NoopResult(
        scale, statistics.median(times), max(rss), requests, math.ceil(tasks / 100), proj.setup_seconds, res
    )


def report(r: NoopResult) -> bool:
    print(
        f"Bench 1: no-op plan at {r.scale:g}x ({r.resources} resources; setup of the converged project took "
        f"{r.setup_s:.0f} s)"
    )
    ok_t = r.median_s <= 2.0
    ok_m = r.max_rss_mb <= 200
    only_pages = set(r.requests) <= {"training-list"} and r.requests["training-list"] == r.expected_pages
    figure("no-op plan wall time (median)", f"{r.median_s:.2f} s", "<= 2 s", ok_t)
    figure("no-op plan peak RSS", f"{r.max_rss_mb:.0f} MB", "<= 200 MB", ok_m)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(r.requests.items())) or "none"
    figure("HTTP requests", shown, f"training-list {r.expected_pages} only", only_pages)
    return ok_t and ok_m and only_pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    report(measure(args.scale, args.runs))


if __name__ == "__main__":
    main()

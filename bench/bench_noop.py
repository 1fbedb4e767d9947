"""Bench 1: no-op `reconciler plan` on a converged project (warm stat cache, refresh against the simulator),
side by side with its peer, `dvc status` on the same files.

The project has the shape of issue #15 (see synth.py): at 1x, 200 datasets of 49 photos under two globs, 200
models, 1,000 generations with 1,500 images on disk, and an account of 700 trainings served in pages of 50.
DVC tracks every dataset folder and the outputs folder (peers.dvc_tracked); the two commands run alternately,
`--runs` times each, in the same run.

Targets: whole-process wall time <= 2 s, <= `dvc status` on the same files, and peak RSS <= 200 MB on a 2-core
machine; HTTP requests = the list pages only (ceil(tasks / 50) `GET /v3/training`), counted from the
simulator's request log.

    python bench/bench_noop.py [--scale 1] [--runs 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter
from dataclasses import dataclass

from common import PAGE, PAGED, cli_env, converged_project, figure, reconciler, start_sim, timed
from peers import dvc, dvc_tracked, dvc_version


@dataclass
class NoopResult:
    scale: float
    median_s: float
    max_rss_mb: float
    requests: Counter[str]
    expected_pages: int
    setup_s: float
    resources: int
    files: int
    peer_s: float | None = None  # `dvc status` median
    peer_rss_mb: float | None = None
    peer: str = ""


def measure(scale: float, runs: int = 5, peer: bool = True) -> NoopResult:
    proj = converged_project(scale)
    files = proj.shape.images + proj.shape.generation_images
    peer_times: list[float] = []
    peer_rss: list[float] = []
    if peer:
        dvc_tracked(proj.root)
        status = [str(dvc()), "status", "-q"]
        first = timed(status, proj.root)
        if first.returncode != 0:
            raise RuntimeError(f"dvc status found changes:\n{first.stdout[-2000:]}{first.stderr[-2000:]}")
    with start_sim(proj.root / "simdata", *PAGED) as sim:
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
            if peer:
                p = timed(status, proj.root)
                assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
                peer_times.append(p.seconds)
                peer_rss.append(p.max_rss_mb)
    tasks = proj.shape.foreign + proj.shape.datasets
    res = proj.shape.datasets * 2 + proj.shape.generations
    return NoopResult(
        scale,
        statistics.median(times),
        max(rss),
        requests,
        math.ceil(tasks / PAGE),
        proj.setup_seconds,
        res,
        files,
        statistics.median(peer_times) if peer_times else None,
        max(peer_rss) if peer_rss else None,
        dvc_version() if peer else "",
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
    ok_peer = True
    if r.peer_s is not None and r.peer_rss_mb is not None:
        ok_peer = r.median_s <= r.peer_s
        figure(
            f"  vs `dvc status` on the same {r.files:,} files",
            f"{r.median_s:.2f} vs {r.peer_s:.2f} s",
            "<= dvc status",
            ok_peer,
        )
    figure("no-op plan peak RSS", f"{r.max_rss_mb:.0f} MB", "<= 200 MB", ok_m)
    if r.peer_rss_mb is not None:
        figure("  (`dvc status` peak RSS)", f"{r.peer_rss_mb:.0f} MB", f"(peer: {r.peer})", None)
    shown = ", ".join(f"{k} {v}" for k, v in sorted(r.requests.items())) or "none"
    figure("HTTP requests", shown, f"training-list {r.expected_pages} only", only_pages)
    return ok_t and ok_m and only_pages and ok_peer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-peer", action="store_true", help="skip `dvc status`")
    args = parser.parse_args()
    report(measure(args.scale, args.runs, not args.no_peer))


if __name__ == "__main__":
    main()

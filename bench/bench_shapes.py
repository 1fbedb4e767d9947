"""Bench 11: the no-op plan on several project shapes, each side by side with `dvc status` on the same files.

Shapes (synth.Shape.named):

- `world`: the project of bench 1 at 1x (200 datasets x 49 photos under two globs, 200 LoraModels, 1,000
  Generations in files of 100, 1,500 generated images; 700 trainings on the account, pages of 50);
- `issue23`: issue #23's project: the same with one manifest file per Generation and a caption sidecar on every
  third photo;
- `photos50k`: issue23 with 1,000 datasets of 50 small photos (~4 KB): 50,000 photo files, 1,000 LoraModels,
  the same 1,000 Generations, and 1,500 trainings on the account (30 pages). The files hold 10,000 distinct
  contents (each in five datasets, uploaded once): applying 50,000 distinct photos took over an hour on this
  shared machine, most of it in the state's commit after each upload.

Each shape is built and applied once (bench/.work/shape-<name>/, see common.converged) and made a DVC
repository (peers.dvc_tracked). Then, in one run, `reconciler plan --detailed-exitcode` and `dvc status -q`
alternate, `--runs` times each; the medians, their ratio and each one's peak RSS are printed next to the
targets: <= 1.0x `dvc status`, <= 200 MB, and for the biggest shape memory growing at most linearly with the
photos (RSS above the bare interpreter's, per photo, no higher than on the smaller shape).

    python bench/bench_shapes.py [--shapes world,issue23,photos50k] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass

from common import PAGED, WORK, cli_env, converged, figure, reconciler, start_sim, timed
from peers import dvc, dvc_tracked
from synth import Shape

SHAPES = ("world", "issue23", "photos50k")


@dataclass
class ShapeResult:
    name: str
    photos: int
    files: int
    setup_s: float
    plan_s: list[float]
    plan_rss: list[float]
    dvc_s: list[float]
    dvc_rss: list[float]
    plan_cpu: list[float]
    dvc_cpu: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.plan_s) / statistics.median(self.dvc_s)


def bare_rss() -> float:
    """Peak RSS of the bare interpreter (the floor under every figure)."""
    return timed([sys.executable, "-c", "pass"], WORK).max_rss_mb


def measure(name: str, runs: int = 5) -> ShapeResult:
    shape = Shape.named(name)
    proj = converged(WORK / f"shape-{name}", shape, name)
    dvc_tracked(proj.root)
    status = [str(dvc()), "status", "-q"]
    first = timed(status, proj.root)
    if first.returncode != 0:
        raise RuntimeError(f"dvc status found changes:\n{first.stdout[-2000:]}{first.stderr[-2000:]}")
    photos = proj.root / "manifests" / "photos"
    files = sum(len(os.listdir(folder)) for folder in photos.iterdir() if folder.is_dir())  # photos, captions
    files += shape.generation_images
    plan_s: list[float] = []
    plan_cpu: list[float] = []
    dvc_cpu: list[float] = []
    plan_rss: list[float] = []
    dvc_s: list[float] = []
    dvc_rss: list[float] = []
    with start_sim(proj.root / "simdata", *PAGED) as sim:
        env = cli_env(sim)
        plan = reconciler("plan", "--detailed-exitcode")
        warm = timed(plan, proj.root, env)  # warms the stat cache (and the manifest cache)
        if warm.returncode != 0:
            raise RuntimeError(f"the {name} project has changes:\n{warm.stdout[-2000:]}{warm.stderr[-2000:]}")
        for _ in range(runs):
            r = timed(plan, proj.root, env)
            assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
            plan_s.append(r.seconds)
            plan_cpu.append(r.cpu_seconds)
            plan_rss.append(r.max_rss_mb)
            p = timed(status, proj.root)
            assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
            dvc_s.append(p.seconds)
            dvc_cpu.append(p.cpu_seconds)
            dvc_rss.append(p.max_rss_mb)
    return ShapeResult(
        name, shape.images, files, proj.setup_seconds, plan_s, plan_rss, dvc_s, dvc_rss, plan_cpu, dvc_cpu
    )


def report(results: list[ShapeResult], floor: float) -> bool:
    print(f"Bench 11: no-op plan by project shape, side by side with `dvc status` (load average {load()})")
    ok = True
    for r in results:
        print(f"  {r.name}: {r.photos:,} photos, {r.files:,} files under DVC (setup {r.setup_s:.0f} s)")
        plan, peer = statistics.median(r.plan_s), statistics.median(r.dvc_s)
        ok_t = r.ratio <= 1.0
        ok_m = max(r.plan_rss) <= 200
        figure(
            "  no-op plan vs `dvc status` (medians)", f"{plan:.2f} vs {peer:.2f} s = {r.ratio:.2f}x", "<= 1.0x", ok_t
        )
        figure(
            "  no-op plan peak RSS (dvc status)", f"{max(r.plan_rss):.0f} ({max(r.dvc_rss):.0f}) MB", "<= 200 MB", ok_m
        )
        runs = ", ".join(f"{s:.2f}" for s in r.plan_s), ", ".join(f"{s:.2f}" for s in r.dvc_s)
        print(f"    plan runs: {runs[0]} s; dvc runs: {runs[1]} s")
        cpu = statistics.median(r.plan_cpu), statistics.median(r.dvc_cpu)
        print(f"    CPU time (user + system), medians: plan {cpu[0]:.2f} s, dvc status {cpu[1]:.2f} s")
        ok &= ok_t and ok_m
    by_name = {r.name: r for r in results}
    small, big = by_name.get("issue23"), by_name.get("photos50k")
    if small and big:
        per_small = (max(small.plan_rss) - floor) / small.photos
        per_big = (max(big.plan_rss) - floor) / big.photos
        ok_lin = per_big <= per_small
        figure(
            "  RSS above the bare interpreter per 1,000 photos",
            f"{per_big * 1000:.1f} vs {per_small * 1000:.1f} MB",
            "50k <= 9.8k (at most linear)",
            ok_lin,
        )
        ok &= ok_lin
    return ok


def load() -> str:
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    names = [n.strip() for n in args.shapes.split(",") if n.strip()]
    head = subprocess.run(["git", "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout.strip()
    print(f"commit: {head[:100]}", flush=True)
    print(f"load average at the start: {load()}", flush=True)
    results = [measure(n, args.runs) for n in names]
    sys.exit(0 if report(results, bare_rss()) else 1)


if __name__ == "__main__":
    main()

"""Bench 2: cold plan (no stat cache): image hashing throughput against `sha256sum`, and memory vs image size.

- the cold plan's whole-process time and the throughput it implies: image bytes / (cold - warm plan time);
- `HashCache.hash_many` alone over the same files (a subprocess), against `sha256sum` over the same files in
  the same run (files in the page cache for both); target >= 80% of sha256sum;
- peak RSS hashing the 50 KB files vs a few 50 MB files: must not grow with image size.

    python bench/bench_cold.py [--scale 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import PAGED, WORK, cli_env, converged_project, figure, reconciler, start_sim, timed

HASHER = """
import sys, time
from pathlib import Path
from reconciler.desired.hashing import HashCache
paths = [Path(p) for p in Path(sys.argv[1]).read_text().split("\\n") if p]
t0 = time.perf_counter()
HashCache(None).hash_many(paths)
print(time.perf_counter() - t0)
"""


@dataclass
class ColdResult:
    scale: float
    cold_s: float
    warm_s: float
    total_mb: float
    files: int
    ours_s: float
    sha256sum_s: float
    rss_small_mb: float
    rss_big_mb: float
    rss_baseline_mb: float


def _hash_in_subprocess(list_file: Path, cwd: Path) -> tuple[float, float]:
    r = timed([sys.executable, "-c", HASHER, str(list_file)], cwd)
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip()), r.max_rss_mb


def big_files(count: int = 4, mb: int = 50) -> list[Path]:
    folder = WORK / "big"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        p = folder / f"big-{i}.jpg"
        if not p.exists() or p.stat().st_size != mb << 20:
            with open(p, "wb") as fh:  # in 1 MiB pieces: this process stays small (its children fork from it)
                fh.write(b"\xff\xd8\xff\xe0" + os.urandom((1 << 20) - 4))
                for _ in range(mb - 1):
                    fh.write(os.urandom(1 << 20))
        out.append(p)
    return out


def measure(scale: float) -> ColdResult:
    proj = converged_project(scale)
    paths = sorted(p for p in (proj.root / "manifests" / "photos").rglob("*") if p.suffix in (".jpg", ".png"))
    total = sum(p.stat().st_size for p in paths)
    list_file = WORK / f"paths-{scale:g}.txt"
    list_file.write_text("\n".join(map(str, paths)))
    cache = proj.root / "state" / ".state.hashcache.json"
    with start_sim(proj.root / "simdata", *PAGED) as sim:
        env = cli_env(sim)
        timed(reconciler("plan"), proj.root, env)  # page cache and stat cache warm
        warm = timed(reconciler("plan", "--detailed-exitcode"), proj.root, env)
        cache.unlink(missing_ok=True)
        cache.with_name(".state.manifests.hashcache.json").unlink(missing_ok=True)  # nothing parsed before either
        cold = timed(reconciler("plan", "--detailed-exitcode"), proj.root, env)
        assert cold.returncode == 0, cold.stdout[-2000:] + cold.stderr[-2000:]
    # hashing alone, ours vs sha256sum (best of 3 each, interleaved)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(_hash_in_subprocess(list_file, proj.root)[0])
        t0 = time.perf_counter()
        subprocess.run(f"xargs -a {list_file} -d '\\n' sha256sum > /dev/null", shell=True, check=True, cwd=proj.root)
        theirs.append(time.perf_counter() - t0)
    baseline = timed([sys.executable, "-c", "import reconciler.desired.hashing"], proj.root).max_rss_mb
    _, rss_small = _hash_in_subprocess(list_file, proj.root)
    big_list = WORK / "paths-big.txt"
    big_list.write_text("\n".join(map(str, big_files())))
    _, rss_big = _hash_in_subprocess(big_list, proj.root)
    return ColdResult(
        scale, cold.seconds, warm.seconds, total / 1e6, len(paths), min(ours), min(theirs), rss_small, rss_big, baseline
    )


def report(r: ColdResult) -> bool:
    print(f"Bench 2: cold plan at {r.scale:g}x ({r.files} images, {r.total_mb:.0f} MB, files in the page cache)")
    plan_mbps = r.total_mb / max(r.cold_s - r.warm_s, 1e-6)
    ours, theirs = r.total_mb / r.ours_s, r.total_mb / r.sha256sum_s
    ok = ours >= 0.8 * theirs
    ok_mem = r.rss_big_mb <= r.rss_small_mb + 20
    figure("cold plan wall time (no stat cache)", f"{r.cold_s:.2f} s", "(warm: " + f"{r.warm_s:.2f} s)", None)
    figure("cold plan hashing throughput", f"{plan_mbps:.0f} MB/s", "(bytes / (cold - warm))", None)
    figure("hash_many throughput vs sha256sum", f"{ours:.0f} vs {theirs:.0f} MB/s", ">= 80% of sha256sum", ok)
    figure(
        "peak RSS hashing 50 KB files vs 4 x 50 MB",
        f"{r.rss_small_mb:.0f} vs {r.rss_big_mb:.0f} MB",
        f"no growth (bare import {r.rss_baseline_mb:.0f} MB)",
        ok_mem,
    )
    return ok and ok_mem


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    report(measure(args.scale))


if __name__ == "__main__":
    main()

"""Bench 4: apply against the simulator with 50 ms latency per request, 2 s trainings, 20 images/minute txt2img.

A smaller project than the others, so it runs in about a minute and a half: 10 models x 20 images (200 uploads),
40 txt2img generations x 1 image, each using one of the models. Compared with the critical path (ideal
upload -> train -> generate chain under that rate limit):

    uploads all in parallel           2 requests (ticket + PUT)                      2 x latency
    trainings all in parallel         create + 2 s + one status read                 2 s + 2 x latency
    generations                       a 60 s sliding window of 20 images: the last   floor((N-1)/20) x 60 s
                                      image starts that long after the first
    the last generation               submit + 1 s + result + download               1 s + 3 x latency

(The brief's coarser "total images / 20 per minute" is printed too.) Target: wall <= 1.15 x critical path;
zero 429s; uploads side by side (concurrency from the request log: each request spans [ts - latency, ts]).
Apply runs with --poll-interval 0.25 (the default 10 s training poll would dominate 2 s trainings).

    python bench/bench_apply.py [--models 10] [--images 20] [--generations 40]
"""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from dataclasses import dataclass

from common import WORK, cli_env, figure, reconciler, start_sim, timed
from synth import Shape, generate

LATENCY = 0.05
TRAIN_S = 2.0
GEN_S = 1.0
IPM = 20


@dataclass
class ApplyResult:
    shape: Shape
    wall_s: float
    critical_s: float
    coarse_s: float
    status: Counter[int]
    endpoints: Counter[str]
    upload_peak: int
    upload_mean: float
    returncode: int


def critical_path(shape: Shape) -> tuple[float, float]:
    n = shape.generation_images
    uploads = 2 * LATENCY
    train = TRAIN_S + 2 * LATENCY
    gens = ((n - 1) // IPM) * 60.0 + GEN_S + 3 * LATENCY
    coarse = uploads + train + n / IPM * 60.0
    return uploads + train + gens, coarse


def concurrency(stamps: list[float]) -> tuple[int, float]:
    """Peak and mean number of requests in flight, each spanning [ts - LATENCY, ts]."""
    if not stamps:
        return 0, 0.0
    events = sorted([(t - LATENCY, 1) for t in stamps] + [(t, -1) for t in stamps])
    peak = cur = 0
    busy = weighted = 0.0
    last = events[0][0]
    for t, d in events:
        if cur > 0:
            busy += t - last
            weighted += cur * (t - last)
        cur += d
        peak = max(peak, cur)
        last = t
    return peak, weighted / busy if busy else 0.0


def measure(models: int = 10, images: int = 20, generations: int = 40) -> ApplyResult:
    shape = Shape(
        datasets=models, images_per_dataset=images, generations=generations, images_per_generation=1, foreign=0
    )
    root = WORK / "apply-bench"
    if root.exists():
        shutil.rmtree(root)
    generate(root, shape)
    sim_args = ("--fault", f"latency={LATENCY}", "--training-seconds", str(TRAIN_S))
    sim_args += ("--generation-seconds", str(GEN_S), "--ipm-txt2img", str(IPM))
    with start_sim(root / "simdata", *sim_args) as sim:
        r = timed(reconciler("apply", "--auto-approve", "--poll-interval", "0.25"), root, cli_env(sim))
        log = sim.log()
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
    stamps = [rec["ts"] for rec in log if rec["endpoint"] in ("assets", "upload")]
    peak, mean = concurrency(stamps)
    crit, coarse = critical_path(shape)
    return ApplyResult(
        shape,
        r.seconds,
        crit,
        coarse,
        Counter(rec["status"] for rec in log),
        Counter(rec["endpoint"] for rec in log),
        peak,
        mean,
        r.returncode,
    )


def report(r: ApplyResult) -> bool:
    s = r.shape
    print(
        f"Bench 4: apply ({s.datasets} models x {s.images_per_dataset} images, {s.generations} generations x "
        f"{s.images_per_generation} image; latency {LATENCY * 1000:.0f} ms, {TRAIN_S:g} s trainings, {IPM} images/min)"
    )
    ratio = r.wall_s / r.critical_s
    ok = ratio <= 1.15 and r.returncode == 0
    figure("apply wall time / critical path", f"{r.wall_s:.1f} / {r.critical_s:.1f} s = {ratio:.2f}x", "<= 1.15x", ok)
    figure("  (coarse critical path: images / 20 per min)", f"{r.coarse_s:.1f} s", "", None)
    n429 = r.status.get(429, 0)
    figure("429 answers met", str(n429), "0", n429 == 0)
    figure(
        "upload concurrency (peak / mean in flight)",
        f"{r.upload_peak} / {r.upload_mean:.1f}",
        "> 1 (side by side)",
        r.upload_peak > 1,
    )
    print("    requests: " + ", ".join(f"{k} {v}" for k, v in sorted(r.endpoints.items())))
    return ok and n429 == 0 and r.upload_peak > 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--generations", type=int, default=40)
    args = parser.parse_args()
    report(measure(args.models, args.images, args.generations))


if __name__ == "__main__":
    main()

"""Bench 7: a first apply against its peer, a threaded script on the official SDK (bench/sdk_peer.py).

The workload of issue #15: 5 models x 12 images, 10 txt2img generations x 1 image, 3 s trainings, 50 ms latency
on every request, Novita's default 20 images/minute. Each run starts from nothing: a fresh project and a fresh
simulator for each contender, the two run alternately, `--runs` times each, in the same run of this script.
`reconciler apply --auto-approve` runs with its default flags; the script polls every second.

Target: apply <= 0.75 x the script (median wall times, whole processes).

    python bench/bench_first_apply.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field

from common import WORK, cli_env, figure, reconciler, start_sim, timed
from synth import Shape, generate

LATENCY = 0.05
TRAIN_S = 3.0
SHAPE = Shape(datasets=5, images_per_dataset=12, generations=10, images_per_generation=1, foreign=0)
SIM_ARGS = ("--fault", f"latency={LATENCY}", "--training-seconds", str(TRAIN_S))


@dataclass
class FirstApply:
    apply_s: list[float] = field(default_factory=list)
    peer_s: list[float] = field(default_factory=list)
    apply_requests: Counter[str] = field(default_factory=Counter)
    peer_requests: Counter[str] = field(default_factory=Counter)


def _one(kind: str, run: int) -> tuple[float, Counter[str]]:
    root = WORK / f"first-apply-{kind}"
    if root.exists():
        shutil.rmtree(root)
    generate(root, SHAPE)
    with start_sim(root / "simdata", *SIM_ARGS) as sim:
        if kind == "apply":
            r = timed(reconciler("apply", "--auto-approve"), root, cli_env(sim))
        else:
            r = timed([sys.executable, str(WORK.parent / "sdk_peer.py"), str(root)], root, cli_env(sim))
        requests = Counter(rec["endpoint"] for rec in sim.log())
    if r.returncode != 0:
        raise RuntimeError(f"{kind} run {run} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.seconds, requests


def measure(runs: int = 3) -> FirstApply:
    result = FirstApply()
    for run in range(runs):
        seconds, result.apply_requests = _one("apply", run)
        result.apply_s.append(seconds)
        seconds, result.peer_requests = _one("peer", run)
        result.peer_s.append(seconds)
    return result


def report(r: FirstApply) -> bool:
    s = SHAPE
    print(
        f"Bench 7: first apply vs a threaded SDK script ({s.datasets} models x {s.images_per_dataset} images, "
        f"{s.generations} generations; {TRAIN_S:g} s trainings, {LATENCY * 1000:.0f} ms latency)"
    )
    apply_s, peer_s = statistics.median(r.apply_s), statistics.median(r.peer_s)
    ok = apply_s <= 0.75 * peer_s
    figure(
        "apply (default flags) vs the SDK script",
        f"{apply_s:.1f} vs {peer_s:.1f} s = {apply_s / peer_s:.2f}x",
        "<= 0.75x",
        ok,
    )
    print("    apply runs: " + ", ".join(f"{t:.1f}" for t in r.apply_s) + " s; script runs: "
          + ", ".join(f"{t:.1f}" for t in r.peer_s) + " s")  # fmt: skip
    print("    apply requests: " + ", ".join(f"{k} {v}" for k, v in sorted(r.apply_requests.items())))
    print("    script requests: " + ", ".join(f"{k} {v}" for k, v in sorted(r.peer_requests.items())))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(measure(args.runs))


if __name__ == "__main__":
    main()

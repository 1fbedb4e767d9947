"""Bench 5: no-op plan time at 0.5x / 1x / 2x (/ 4x) the project: it must grow no faster than linearly.

Each scale's converged project is built once (bench/.work/converged-<scale>/, see common.converged_project)
and reused. Reports time per 1,000 resources at each scale; "linear" means the largest scale's time per
resource is at most 1.2x the smallest's (a fixed start-up cost makes small scales relatively dearer, so
sub-linear growth is the normal shape).

    python bench/bench_scaling.py [--scales 0.5,1,2]
"""

from __future__ import annotations

import argparse

from bench_noop import NoopResult, measure
from common import figure


def run(scales: list[float], runs: int = 3) -> list[NoopResult]:
    return [measure(s, runs, peer=False) for s in scales]


def report(results: list[NoopResult]) -> bool:
    print("Bench 5: no-op plan scaling")
    for r in results:
        per_k = r.median_s / r.resources * 1000
        figure(
            f"  {r.scale:g}x: {r.resources} resources, {r.expected_pages} pages",
            f"{r.median_s:.2f} s, {r.max_rss_mb:.0f} MB",
            f"{per_k:.2f} s per 1000 resources",
            None,
        )
    first, last = results[0], results[-1]
    growth = (last.median_s / first.median_s) / (last.resources / first.resources)
    ok = growth <= 1.2
    figure(
        f"time growth {first.scale:g}x -> {last.scale:g}x vs size growth",
        f"{last.median_s / first.median_s:.2f}x vs {last.resources / first.resources:.2f}x",
        "no faster than linear",
        ok,
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="0.5,1,2")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    report(run([float(s) for s in args.scales.split(",")], args.runs))


if __name__ == "__main__":
    main()

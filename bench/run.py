"""Run every benchmark and print each figure next to its target.

    python bench/run.py                      # all, at scale 1 (scaling at 0.5, 1, 2)
    python bench/run.py --only noop,cold     # some: startup, noop, cold, apply, first, polling, pipeline, scaling,
                                             # team, gallery, shapes
    python bench/run.py --scale 0.25         # a smaller project for noop and cold (scaling: --scales)

Converged projects are built on first use under bench/.work/ (git-ignored) and reused; delete that folder
to rebuild them. The machine is printed first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_apply
import bench_cold
import bench_first_apply
import bench_gallery
import bench_noop
import bench_pipeline
import bench_polling
import bench_scaling
import bench_shapes
import bench_startup
import bench_team
from common import machine

ALL = ("startup", "noop", "cold", "apply", "first", "polling", "pipeline", "scaling", "team", "gallery", "shapes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated: " + ", ".join(ALL))
    parser.add_argument("--scale", type=float, default=1.0, help="project scale for noop, cold and pipeline")
    parser.add_argument("--scales", default="0.5,1,2", help="scales for the scaling bench")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown bench: {', '.join(sorted(unknown))}")
    print(f"Machine: {machine()}\n", flush=True)
    ok = True
    t0 = time.perf_counter()
    for name in ALL:
        if name not in chosen:
            continue
        if name == "startup":
            ok &= bench_startup.report(bench_startup.measure())
        elif name == "noop":
            ok &= bench_noop.report(bench_noop.measure(args.scale))
        elif name == "cold":
            ok &= bench_cold.report(bench_cold.measure(args.scale))
        elif name == "apply":
            ok &= bench_apply.report(bench_apply.measure())
        elif name == "first":
            ok &= bench_first_apply.report(bench_first_apply.measure())
        elif name == "polling":
            ok &= bench_polling.report(bench_polling.measure())
        elif name == "pipeline":
            ok &= bench_pipeline.report(bench_pipeline.measure(args.scale))
        elif name == "team":
            ok &= bench_team.report(bench_team.measure(args.scale))
        elif name == "scaling":
            ok &= bench_scaling.report(bench_scaling.run([float(s) for s in args.scales.split(",")]))
        elif name == "gallery":
            ok &= bench_gallery.report(bench_gallery.measure())
        elif name == "shapes":
            ok &= bench_shapes.report([bench_shapes.measure(n) for n in bench_shapes.SHAPES], bench_shapes.bare_rss())
        print(flush=True)
    print(f"{'All targets met' if ok else 'Some targets missed'} ({time.perf_counter() - t0:.0f} s).")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

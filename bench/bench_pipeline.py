"""Bench 9: uploads pipelined into trainings: each training submitted the moment its own images are up.

At 1x the project of issue #15 without generations: 200 LoraModels x 49 images (9,800 uploads), `--parallelism
16`, trainings of 20 s, no latency added. From the simulator's request log: when the last upload ended, when
the first and the last training were submitted, and how many were submitted before the uploads ended.

Targets: the first training submitted within 5% of the all-uploads time; trainings spread over the upload
phase; total wall time <= all uploads + one training (the longest submit-to-serving-seen span measured).

    python bench/bench_pipeline.py [--scale 1] [--poll-interval S]   # extra flags go to apply
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass

from common import WORK, cli_env, figure, reconciler, start_sim, timed
from synth import Shape, generate

TRAIN_S = 20.0


@dataclass
class Pipeline:
    models: int
    uploads: int
    wall_s: float
    uploads_s: float
    first_submit_s: float
    last_submit_s: float
    before_uploads_end: int
    one_training_s: float


def measure(scale: float = 1.0, extra: tuple[str, ...] = ()) -> Pipeline:
    base = Shape.at(scale)
    shape = Shape(base.datasets, base.images_per_dataset, 0, 1, 0, pngs_per_dataset=base.pngs_per_dataset)
    root = WORK / f"pipeline-{scale:g}"
    if root.exists():
        shutil.rmtree(root)
    generate(root, shape)
    with start_sim(root / "simdata", "--training-seconds", str(TRAIN_S)) as sim:
        began = time.time()
        r = timed(reconciler("apply", "--auto-approve", "--parallelism", "16", *extra), root, cli_env(sim))
        log = sim.log()
    if r.returncode != 0:
        raise RuntimeError(f"apply failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    uploads = [rec["ts"] - began for rec in log if rec["endpoint"] == "upload"]
    creates = sorted(rec["ts"] - began for rec in log if rec["endpoint"] == "training-create")
    created: dict[str, float] = {}
    last_look: dict[str, float] = {}  # the last status read of a training is the one that saw it serving
    for rec in log:
        task_id = (rec.get("body_summary") or {}).get("task_id")
        if rec["endpoint"] == "training-create" and task_id:
            created[task_id] = rec["ts"]
        elif rec["endpoint"] == "training-get" and task_id:
            last_look[task_id] = rec["ts"]
    spans = [last_look[t] - created[t] for t in last_look if t in created]
    end = max(uploads)
    return Pipeline(
        shape.datasets,
        len(uploads),
        r.seconds,
        end,
        creates[0],
        creates[-1],
        sum(1 for c in creates if c <= end),
        max(spans) if spans else TRAIN_S,
    )


def report(p: Pipeline) -> bool:
    print(f"Bench 9: uploads pipelined into trainings ({p.models} models, {p.uploads} uploads, --parallelism 16, "
          f"{TRAIN_S:g} s trainings)")  # fmt: skip
    ok_first = p.first_submit_s <= 0.05 * p.uploads_s
    ok_spread = p.before_uploads_end >= p.models * 0.9
    bound = p.uploads_s + p.one_training_s
    ok_wall = p.wall_s <= bound
    figure("first training submitted / all uploads done", f"{p.first_submit_s:.1f} / {p.uploads_s:.1f} s",
           "<= 5% of the uploads", ok_first)  # fmt: skip
    figure("last training submitted", f"{p.last_submit_s:.1f} s", "(after the last upload)", None)
    figure("trainings submitted while uploads went on", f"{p.before_uploads_end} of {p.models}", ">= 90%", ok_spread)
    figure("wall time vs uploads + one training", f"{p.wall_s:.1f} vs {bound:.1f} s", "<=", ok_wall)
    return ok_first and ok_spread and ok_wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    args, extra = parser.parse_known_args()
    report(measure(args.scale, tuple(extra)))


if __name__ == "__main__":
    main()

"""Bench 12: what the estimate (paid units, time, cost, budget; plan/estimate.py) adds to a no-op plan.

On a converged 1x world (200 datasets of 49 photos, 200 models, 1,000 generations: about 10,000 images), with
prices and a budget in reconciler.yaml (so the estimate, the budget check and their rendering all run), the
no-op plan runs in this process against the simulator over a real socket, `--runs` times; each run times the
whole plan (load, hash check, refresh, plan, estimate, render) and, inside it, the estimate's own share
(`commands.costs.estimated` and the estimate's lines of the rendered text). A no-op plan pays for nothing, so it
never reads the balance: no request is added either (counted from the simulator's log).

Target: the estimate adds at most 5% to the no-op plan.

    python bench/bench_estimate.py [--world DIR] [--runs 5]

`--world` is a converged project (default: bench/.work/converged-1, built by `converged_project(1)` on first use;
a world another bench built, e.g. bench_shapes.py's shape-world, can be given: it is copied with hard links,
since a plan writes only through atomic renames).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from common import PAGED, WORK, cli_env, converged_project, figure, start_sim


def world(given: Path | None) -> Path:
    if given is None:
        return converged_project(1).root
    copy = WORK / "estimate-world"
    if not copy.exists():
        WORK.mkdir(exist_ok=True)
        subprocess.run(["cp", "-al", str(given), str(copy)], check=True)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--world", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = world(args.world)
    (root / "reconciler.yaml").unlink(missing_ok=True)  # a hard link: replaced, never written through
    (root / "reconciler.yaml").write_text(
        "apply:\n  budget: {max_images: 5000, max_cost: 50}\nprices:\n  training: 1.50\n  image: 0.002\n"
    )
    import reconciler.commands.workflow as workflow

    import reconciler.commands.costs as costs
    from reconciler.commands.workspace import Flags, Settings
    from reconciler.present.estimate import estimate_lines
    from reconciler.present.render import render_text

    spent: list[float] = []
    real = workflow.estimated

    def timed_estimate(*a: object, **kw: object) -> object:
        began = time.perf_counter()
        try:
            return real(*a, **kw)  # type: ignore[arg-type]
        finally:
            spent.append(time.perf_counter() - began)

    workflow.estimated = timed_estimate  # type: ignore[assignment]
    assert costs.estimated is real
    with start_sim(root / "simdata", *PAGED) as sim:
        os.environ.update({k: v for k, v in cli_env(sim).items() if k.startswith("NOVITA_")})
        os.chdir(root)
        plans, shares = [], []
        requests: Counter[str] = Counter()
        for i in range(args.runs + 1):  # the first warms the caches and is not counted
            before = sim.log_size()
            spent.clear()
            began = time.perf_counter()
            plan = workflow.plan_command(Settings.make(Flags()))
            rendered = time.perf_counter()
            render_text(plan)
            lines_began = time.perf_counter()
            estimate_lines(plan)
            ended = time.perf_counter()
            assert plan.empty and plan.estimate is not None and not plan.estimate.paid, "the world is not converged"
            if i:
                plans.append(ended - began - (ended - lines_began))  # the plan, its text, counted once
                shares.append(sum(spent) + (ended - lines_began))
                requests = Counter(rec["endpoint"] for rec in sim.log(before))
            del rendered
    whole, share = statistics.median(plans), statistics.median(shares)
    print(f"Bench 12: the estimate in a no-op plan ({root.name}, {args.runs} runs, load {os.getloadavg()[0]:.1f})")
    figure("no-op plan in process (median)", f"{whole:.2f} s", "", None)
    figure("of which the estimate (median)", f"{share * 1000:.2f} ms", "", None)
    figure("the estimate's share", f"{100 * share / whole:.2f} %", "<= 5 %", share / whole <= 0.05)
    figure(
        "requests of the no-op plan",
        ", ".join(f"{k} {v}" for k, v in sorted(requests.items())),
        "list pages only",
        "balance" not in requests,
    )


if __name__ == "__main__":
    main()

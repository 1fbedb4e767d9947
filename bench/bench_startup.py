"""Bench 3: `reconciler --help` and `reconciler validate` on the example in manifests/: whole-process time.

Median of several runs; target <= 0.3 s each. Also lists the slowest imports of `validate` (python -X importtime).

    python bench/bench_startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass

from common import REPO, cli_env, figure, reconciler, timed


@dataclass
class StartupResult:
    help_s: float
    validate_s: float
    top_imports: list[tuple[float, str]]


def measure(runs: int = 9) -> StartupResult:
    env = cli_env(None)
    timed(reconciler("--help"), REPO, env)  # bytecode compiled, files cached
    helps = [timed(reconciler("--help"), REPO, env).seconds for _ in range(runs)]
    validates = []
    for _ in range(runs):
        r = timed(reconciler("validate"), REPO, env)
        assert r.returncode == 0, r.stdout + r.stderr
        validates.append(r.seconds)
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", "validate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    ).stderr
    tops: list[tuple[float, str]] = []
    for line in trace.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 2:  # top-level imports only
            tops.append((int(m.group(1)) / 1e6, m.group(3)))
    tops.sort(reverse=True)
    return StartupResult(statistics.median(helps), statistics.median(validates), tops[:6])


def report(r: StartupResult) -> bool:
    print("Bench 3: start-up (example project in manifests/)")
    figure("reconciler --help (median)", f"{r.help_s:.3f} s", "<= 0.3 s", r.help_s <= 0.3)
    figure("reconciler validate (median)", f"{r.validate_s:.3f} s", "<= 0.3 s", r.validate_s <= 0.3)
    print("    slowest top-level imports of validate: " + ", ".join(f"{n} {s * 1000:.0f} ms" for s, n in r.top_imports))
    return r.help_s <= 0.3 and r.validate_s <= 0.3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    report(measure(args.runs))


if __name__ == "__main__":
    main()

"""The same plan before and after a change: `reconciler plan` (text and --json) of two source trees, compared byte
for byte on the example project (a copy of manifests/, `--sim`) and on the bench's converged shapes: their no-op
plan against the simulator, and their whole plan from an empty state (`--no-refresh`: every image, model and
generation listed). Each plan of the tree under test runs twice (the second reads the manifest cache).

    git worktree add /tmp/before main   # or: git archive main | tar -x -C /tmp/before
    python bench/compare_plans.py /tmp/before [--shapes world,issue23,photos50k]

Each tree runs as `python -m reconciler` with PYTHONPATH set to it, so both use this venv's packages.
Exit status 0 when every output is identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PAGED, REPO, WORK, cli_env, start_sim

FORMATS = (("plan",), ("plan", "--json"))


def run(tree: Path, cwd: Path, env: dict[str, str], args: tuple[str, ...]) -> bytes:
    env = {**env, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, capture_output=True)
    return proc.stdout + proc.stderr + f"\nexit {proc.returncode}\n".encode()


def example(tree: Path, args: tuple[str, ...]) -> bytes:
    """The plan of a fresh copy of the repository's example project, against the in-process simulator."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(REPO / "manifests", Path(tmp) / "manifests")
        return run(tree, Path(tmp), cli_env(None), (*args, "--sim"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="the source tree to compare with (holds reconciler/)")
    parser.add_argument("--shapes", default="world,issue23,photos50k")
    args = parser.parse_args()
    before, after = args.before.resolve(), REPO
    same = True

    def check(what: str, old: bytes, new: bytes) -> None:
        nonlocal same
        ok = old == new
        same &= ok
        print(f"  [{'same' if ok else 'DIFF'}] {what} ({len(new):,} bytes)", flush=True)
        if not ok:
            for i, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=False)):
                if a != b:
                    print(f"    first difference, line {i + 1}:\n    - {a[:200]!r}\n    + {b[:200]!r}")
                    break

    for fmt in FORMATS:
        check(f"example project: reconciler {' '.join(fmt)} --sim", example(before, fmt), example(after, fmt))
    for name in [n for n in args.shapes.split(",") if n]:
        root = WORK / f"shape-{name}"
        if not (root / "converged.json").exists():
            print(f"  [skip] {name}: not built (python bench/bench_shapes.py --shapes {name})")
            continue
        with start_sim(root / "simdata", *PAGED) as sim, tempfile.TemporaryDirectory() as tmp:
            env = cli_env(sim)
            empty = ("--no-refresh", "--state", str(Path(tmp) / "state.json"))  # every resource to create
            for fmt in (*FORMATS, *((*f, *empty) for f in FORMATS)):
                old, new = run(before, root, env, fmt), run(after, root, env, fmt)
                again = run(after, root, env, fmt)  # the second run reads the manifest cache
                check(f"{name}: reconciler {' '.join(fmt)}", old, new)
                check(f"{name}: reconciler {' '.join(fmt)}, again", old, again)
    print("identical" if same else "DIFFERENT")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()

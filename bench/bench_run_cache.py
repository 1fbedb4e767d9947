"""Bench 11: the run cache's cost: a plan of a 1,000-member matrix with a full history, side by side with main.

The project is one Generation with a 1,000-member matrix (`seed` × `steps` × `guidance_scale`, 10 × 10 × 10),
recorded as applied, every member with one replaced run in its history (its images and sidecar in
`<output>/history/<12 hex>/`): 2,000 images on disk. Two plans, offline (`--no-refresh`) with the stat cache
warm: a no-op plan (nothing is looked up), and a plan after the prompt changed (all 1,000 identities are looked
up in the run cache before they are paid for: the state's records and each member's history folder). Each is
run alternately with this tree and with `main` (a detached git worktree of its commit under bench/.work/), five
times each; the figure is the median. Target: within 10% of main's time.

    python bench/bench_run_cache.py [--members 1000] [--runs 5] [--base main]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, WORK, cli_env, figure, timed

sys.path.insert(0, str(REPO))

MANIFEST = """\
apiVersion: reconciler/v1
kind: Generation
metadata: {{name: sweep}}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: {prompt}
  width: 512
  height: 512
  output: ../outputs/sweep
  matrix:
    seed: {seeds}
    steps: {steps}
    guidance_scale: {scales}
"""
PROMPT = "a photo of ohwx woman, studio lighting"
EDITED = "a photo of ohwx woman, golden hour"
PNG = b"\x89PNG\r\n\x1a\n"


def _axes(members: int) -> tuple[list[int], list[int], list[float]]:
    side = round(members ** (1 / 3))
    return list(range(1, side + 1)), list(range(20, 20 + side)), [5.0 + 0.5 * i for i in range(side)]


def build_project(members: int) -> Path:
    """The applied project with a full history (built once under bench/.work/run-cache-<members>/)."""
    root = WORK / f"run-cache-{members}"
    if (root / "built").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "manifests").mkdir(parents=True)
    seeds, steps, scales = _axes(members)
    manifest = root / "manifests/sweep.yaml"
    manifest.write_text(MANIFEST.format(prompt=PROMPT, seeds=seeds, steps=steps, scales=scales))

    from reconciler.desired.hashing import HashCache, sha256_file
    from reconciler.desired.resources import build_desired
    from reconciler.files import atomic_write, display_path
    from reconciler.load import load_manifests
    from reconciler.outputs.folders import image_path
    from reconciler.outputs.sidecar import sidecar_name
    from reconciler.state import FileRecord, GenerationEntry, HistoryRecord, State
    from reconciler.status import Status

    desired = build_desired(load_manifests([root / "manifests"], root), HashCache(None), root)
    state = State()
    for n, gen in enumerate(desired.generations.values()):
        identity = gen.identity({})
        assert identity is not None
        path = image_path(gen, 0, "png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PNG + f"current {n}".encode())
        files = [FileRecord(path=display_path(path, root), sha256=sha256_file(path))]
        old = f"{n:012x}" + identity[12:]
        folder = gen.output_dir / "history" / old[:12]
        folder.mkdir(parents=True)
        (folder / path.name).write_bytes(PNG + f"earlier {n}".encode())
        digest = sha256_file(folder / path.name)
        sidecar = {"identity": old, "images": [{"file": path.name, "sha256": digest}]}
        (folder / sidecar_name(gen.stem)).write_text(json.dumps(sidecar))
        record = HistoryRecord(
            identity=old,
            folder=display_path(folder, root),
            files=[FileRecord(path=display_path(folder / path.name, root), sha256=digest)],
        )
        entry = GenerationEntry.of(gen, identity, {}, Status.SUCCEEDED, files=files, task_id="bench", history=[record])
        state.put(entry)
    state.serial = 1
    atomic_write(root / "state/state.json", state.model_dump_json())
    (root / "built").write_text("1")
    return root


def base_tree(ref: str) -> Path:
    """A detached worktree of `ref` (main as it is, without this branch's change) under bench/.work/."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    tree = WORK / f"base-{sha[:12]}"
    if not tree.is_dir():
        add = ["git", "worktree", "add", "--detach", str(tree), sha]
        subprocess.run(add, cwd=REPO, check=True, capture_output=True)
    return tree


def plan_seconds(root: Path, code: Path, runs: int) -> list[float]:
    env = cli_env(None)
    env["PYTHONPATH"] = str(code)
    out = []
    for _ in range(runs):
        t = timed([sys.executable, "-m", "reconciler", "plan", "--no-refresh"], root, env)
        assert t.returncode == 0, t.stdout + t.stderr
        out.append(t.seconds)
    return out


def compare(root: Path, base: Path, runs: int) -> tuple[float, float]:
    """Median seconds (this tree, base), run alternately so both see the same load."""
    mine: list[float] = []
    theirs: list[float] = []
    plan_seconds(root, REPO, 1)  # warm the stat cache (and the OS's) once
    for _ in range(runs):
        mine += plan_seconds(root, REPO, 1)
        theirs += plan_seconds(root, base, 1)
    return statistics.median(mine), statistics.median(theirs)


def measure(members: int = 1000, runs: int = 5, ref: str = "main") -> list[tuple[str, float, float]]:
    """(label, this tree's median seconds, base's) for the no-op plan and the plan after a prompt edit."""
    t0 = time.perf_counter()
    root = build_project(members)
    base = base_tree(ref)
    setup = time.perf_counter() - t0
    print(f"Bench 13: run cache, {members}-member matrix with a full history vs {ref} (setup {setup:.1f} s)")
    manifest = root / "manifests/sweep.yaml"
    figures = []
    try:
        for label, prompt in (("no-op plan", PROMPT), ("plan after a prompt edit", EDITED)):
            manifest.write_text(manifest.read_text().replace(PROMPT, prompt))
            figures.append((label, *compare(root, base, runs)))
    finally:
        manifest.write_text(manifest.read_text().replace(EDITED, PROMPT))
    return figures


def report(figures: list[tuple[str, float, float]]) -> bool:
    ok = True
    for label, mine, theirs in figures:
        ratio = mine / theirs
        ok &= ratio <= 1.10
        shown = f"{mine:.2f} s vs {theirs:.2f} s ({ratio:.2f}x)"
        figure(f"{label}: this tree vs main", shown, "<= 1.10x", ratio <= 1.10)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base", default="main")
    args = parser.parse_args()
    sys.exit(0 if report(measure(args.members, args.runs, args.base)) else 1)


if __name__ == "__main__":
    main()

"""The peers the benches compare against, each in bench's own environment (never a project dependency).

- DVC: installed with pip into its own venv, bench/.work/dvc-venv/ (git-ignored), the first time it is needed.
  `dvc_tracked(root)` makes the converged project a DVC repository too (`dvc init --no-scm`, then `dvc add` of
  every dataset folder and of the outputs folder), once, so `dvc status` checks the same files the plan checks.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import WORK

DVC_VENV = WORK / "dvc-venv"
DVC = DVC_VENV / "bin" / "dvc"


def dvc() -> Path:
    """The dvc executable of bench's own venv, installed on first use."""
    if not DVC.exists():
        print(f"  peer: installing DVC into {DVC_VENV} (once)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        pip = [str(DVC_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*pip, "dvc"], check=True, stdout=subprocess.DEVNULL)
    return DVC


def dvc_version() -> str:
    return subprocess.run([str(dvc()), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def dvc_tracked(root: Path) -> float:
    """Make `root` (a converged project) a DVC repository tracking its images; returns the seconds it took
    (0 when it already was one)."""
    marker = root / ".dvc-tracked"
    if marker.exists():
        return 0.0
    t0 = time.perf_counter()
    exe = str(dvc())
    if not (root / ".dvc").exists():
        subprocess.run([exe, "init", "--no-scm", "-q"], cwd=root, check=True)
    subprocess.run([exe, "config", "core.analytics", "false"], cwd=root, check=True)
    folders = sorted(p.relative_to(root).as_posix() for p in (root / "manifests" / "photos").iterdir() if p.is_dir())
    print(f"  peer: dvc add of {len(folders)} dataset folders and outputs/ (once)…", flush=True)
    subprocess.run([exe, "add", "-q", *folders, "outputs"], cwd=root, check=True)
    seconds = time.perf_counter() - t0
    marker.write_text(f"{seconds:.1f}\n")
    return seconds

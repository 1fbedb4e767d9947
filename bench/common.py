"""Shared bench helpers: the simulator as a separate process, the CLI as a timed subprocess, the request log.

Plain functions, no test framework: each bench script prints its own figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
API_KEY = "sk-bench-not-a-secret"

sys.path.insert(0, str(BENCH))

from synth import Shape, generate  # noqa: E402


@dataclass
class Timed:
    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system time of that child


def timed(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600) -> Timed:
    """Run a process; whole-process wall time and its own peak RSS (wait4 rusage of that child only)."""
    WORK.mkdir(parents=True, exist_ok=True)
    out_f = WORK / f".stdout-{os.getpid()}"
    err_f = WORK / f".stderr-{os.getpid()}"
    t0 = time.perf_counter()
    with open(out_f, "w") as out, open(err_f, "w") as err:
        proc = subprocess.Popen(list(args), cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Timed(seconds, usage.ru_maxrss / 1024, proc.returncode, out_f.read_text(), err_f.read_text(), cpu)


def reconciler(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


@dataclass
class Sim:
    proc: subprocess.Popen[str]
    base_url: str
    data: Path

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = httpx.get(f"{self.base_url}/_sim/requests", params={"since": since}, timeout=60).json()
            out += page["requests"]
            if not page["requests"] or page["next"] == since:
                return out
            since = page["next"]

    def log_size(self) -> int:
        page = httpx.get(f"{self.base_url}/_sim/requests", params={"since": 10**9}, timeout=60).json()
        return int(page["next"]) if page["next"] < 10**9 else len(self.log())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sim(data: Path, *extra: str) -> Sim:
    data.mkdir(parents=True, exist_ok=True)
    args = reconciler("sim", "serve", "--port", "0", "--data", str(data), "--random-seed", "7", *extra)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return Sim(proc, line.split("listening on ", 1)[1].split()[0], data)


def cli_env(sim: Sim | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVITA_", "RECONCILER_"))}
    env.update(NO_COLOR="1", PYTHONPATH=str(REPO))
    if sim is not None:
        env.update(NOVITA_API_KEY=API_KEY, NOVITA_API_BASE=sim.base_url)
    return env


FAST_SIM = ("--training-seconds", "0.05", "--generation-seconds", "0.02", "--ipm-txt2img", "0")
PAGE = 50  # the simulator serves the training list in pages of 50, like the account of issue #15
PAGED = ("--list-page-max", str(PAGE))


@dataclass
class Converged:
    root: Path
    shape: Shape
    setup_seconds: float
    apply_seconds: float


def converged_project(scale: float, *, log: bool = True) -> Converged:
    """A synthetic project at `scale`, fully applied against the simulator (data in <root>/simdata).

    Built once and reused (bench/.work/converged-<scale>/). The setup applies the whole project for real
    against a fast simulator (trainings 0.05 s, generations 0.02 s, no images-per-minute limit).
    """
    return converged(WORK / f"converged-{scale:g}", Shape.at(scale), f"{scale:g}x", log=log)


def converged(root: Path, shape: Shape, label: str, *, log: bool = True) -> Converged:
    """The project of `shape` in `root`, generated and applied once (see converged_project)."""
    marker = root / "converged.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        return Converged(root, shape, info["setup_seconds"], info["apply_seconds"])
    t0 = time.perf_counter()
    spent = json.loads(partial.read_text())["seconds"] if (partial := root / "setup-partial.json").exists() else 0.0
    if not spent:  # else an interrupted setup: apply resumes it (the state says what is done)
        if root.exists():
            shutil.rmtree(root)
        generate(root, shape)
        partial.write_text(json.dumps({"seconds": 0.0}))
    with start_sim(root / "simdata", "--seed-foreign", str(shape.foreign), *FAST_SIM, *PAGED) as sim:
        if log:
            print(f"  setup: applying the {label} project against a fast simulator…", flush=True)
        ta = time.perf_counter()
        args = ("apply", "--auto-approve", "--poll-interval", "0.05", "--parallelism", "16")
        result = timed([*reconciler(*args), "--ipm-txt2img", "0", "--ipm-img2img", "0"], root, cli_env(sim))
        apply_seconds = time.perf_counter() - ta + spent
        partial.write_text(json.dumps({"seconds": apply_seconds}))
        if result.returncode != 0:
            raise RuntimeError(f"setup apply failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        check = timed(reconciler("plan", "--detailed-exitcode"), root, cli_env(sim))
        if check.returncode != 0:
            raise RuntimeError(f"project did not converge:\n{check.stdout[-3000:]}")
    setup = time.perf_counter() - t0 + spent
    marker.write_text(json.dumps({"setup_seconds": setup, "apply_seconds": apply_seconds}))
    return Converged(root, shape, setup, apply_seconds)


def machine() -> str:
    mem = "?"
    with contextlib.suppress(OSError, IndexError):
        mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, Python {platform.python_version()}, {platform.platform()}"


def verdict(ok: bool) -> str:
    return "OK  " if ok else "MISS"


def figure(name: str, value: str, target: str, ok: bool | None) -> str:
    mark = "    " if ok is None else verdict(ok)
    line = f"  [{mark}] {name:<46} {value:>22}   target {target}"
    print(line, flush=True)
    return line

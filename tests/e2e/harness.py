"""End-to-end harness: the simulator as a separate process on a real socket, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-e2e-4f1c9a7b2d-never-written-anywhere"
# The reliability suites' simulators run a task in about a second, not minutes: their applies take their own
# pauses (retry backoff, the look-ups after an unanswered create, 1, 2 and 4 s by default) at this fraction, the
# same steps in the same order (RECONCILER_TEST_WAIT_SCALE, a test hook; README, "The tests").
WAIT_SCALE = 0.25
QUICK_WAITS = {"RECONCILER_TEST_WAIT_SCALE": str(WAIT_SCALE)}


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    base_url: str
    data: Path

    def requests(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        since = 0
        while True:
            page = httpx.get(f"{self.base_url}/_sim/requests", params={"since": since}, timeout=10).json()
            out += page["requests"]
            if not page["requests"] or page["next"] == since:
                return out
            since = page["next"]

    def faults(self, **fields: Any) -> None:
        httpx.post(f"{self.base_url}/_sim/faults", json=fields, timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sim(data: Path, *extra: str) -> SimProcess:
    args = [
        sys.executable,
        "-m",
        "reconciler",
        "sim",
        "serve",
        "--port",
        "0",
        "--data",
        str(data),
        "--training-seconds",
        "0.6",
        "--generation-seconds",
        "0.2",
        "--random-seed",
        "7",
        *extra,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    base = line.split("listening on ", 1)[1].split()[0]
    return SimProcess(proc, base, data)


@dataclass
class Project:
    root: Path
    sim: SimProcess
    env: dict[str, str] = field(default_factory=dict)
    state_url: str | None = None  # the PostgreSQL state (with its password, for the test's own reads), if any

    def use_postgres(self, url: str, password: str) -> None:
        """Keep the state in PostgreSQL as a team does: the URL in the environment, the password in PGPASSWORD."""
        self.env.update(RECONCILER_STATE_URL=url, PGPASSWORD=password)
        self.state_url = url.replace("://postgres@", f"://postgres:{password}@")

    def run(self, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def apply(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "--auto-approve", "--poll-interval", "0.05", *args, timeout=timeout)

    def state(self) -> dict[str, Any]:
        if self.state_url is not None:
            from reconciler.state.postgres import PostgresBackend

            with PostgresBackend(self.state_url) as backend:
                return backend.read().model_dump(mode="json")
        return json.loads((self.root / "state" / "state.json").read_text())

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new))


def make_project(tmp: Path, sim: SimProcess, source: Path | None = None) -> Project:
    root = tmp / "project"
    shutil.copytree(source or REPO / "manifests", root / "manifests")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVITA_", "RECONCILER_"))}
    env.update(NOVITA_API_KEY=API_KEY, NOVITA_API_BASE=sim.base_url, NO_COLOR="1", PYTHONPATH=str(REPO))
    return Project(root, sim, env)


def submissions(log: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """What the simulator accepted, counted: training creates by task name, generations by prompt,
    uploads (PUTs answered 200) by assets_id, upload tickets."""
    out: dict[str, Counter[str]] = {"trainings": Counter(), "generations": Counter(), "uploads": Counter()}
    for r in log:
        summary = r.get("body_summary") or {}
        created = r.get("status") == 200 or r.get("fault") == "drop-after" or bool(summary.get("task_id"))
        if r.get("endpoint") == "training-create" and created:
            out["trainings"][summary.get("name", "?")] += 1
        elif r.get("endpoint") in ("txt2img", "img2img") and created:
            out["generations"][summary.get("prompt", "?")] += 1
        elif r.get("endpoint") == "upload" and r.get("status") == 200:
            out["uploads"][summary.get("assets_id", "?")] += 1
    return out


def held(project: Project) -> list[str]:
    """Addresses the plan holds for a decision (a generation submit cut by a kill)."""
    out = project.run("plan").stdout
    return [line.split(": ", 2)[1] for line in out.splitlines() if line.startswith("Warning: Generation/")]


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

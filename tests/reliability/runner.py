"""Helpers shared by the reliability suites: an apply process with its output in files, state reads that
tolerate a concurrent writer, and the counts the simulator's request log gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.harness import Project

APPLY = ("apply", "--auto-approve", "--poll-interval", "0.05")


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def start_apply(project: Project, tag: str, *extra: str) -> Running:
    """`reconciler apply` in the background, stdout/stderr into files (no pipe can fill up and block it)."""
    logs = project.root.parent / "logs"
    logs.mkdir(exist_ok=True)
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *APPLY, *extra], cwd=project.root, env=project.env, stdout=o, stderr=e
        )
    return Running(proc, out, err)


_BACKENDS: dict[str, Any] = {}
_READ: dict[str, tuple[int, dict[str, Any]]] = {}  # per state URL: the last serial read, and what it held
_FILES: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}  # per state file: its stat, and what it held


def read_state(project: Project) -> dict[str, Any]:
    """The state as it is now ({} when there is none): the file (the writer renames atomically, so it always
    parses) or, for a project on PostgreSQL, the database's current serial (a commit is one transaction). The
    suites poll this every few milliseconds while an apply runs: on PostgreSQL a serial already read is not read
    again (a serial names one committed version), and a file is parsed again only once another one took its place
    (each save renames a new file over it: a new inode), so the poll does not eat the CPU the apply needs."""
    if project.state_url is not None:
        from reconciler.state.postgres import PostgresBackend

        url = project.state_url
        backend = _BACKENDS.get(url) or _BACKENDS.setdefault(url, PostgresBackend(url))
        seen = _READ.get(url)
        if seen is not None and seen[0] == _current_serial(backend):
            return seen[1]
        state = backend.read()
        data = state.model_dump(mode="json") if state.serial else {}
        _READ[url] = (state.serial, data)
        return data
    path = project.root / "state" / "state.json"
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            version = (info.st_ino, info.st_mtime_ns, info.st_size)
            seen_file = _FILES.get(path)
            if seen_file is not None and seen_file[0] == version:
                return seen_file[1]
            data = dict(json.loads(f.read()))
    except FileNotFoundError:
        return {}
    _FILES[path] = (version, data)
    return data


def _current_serial(backend: Any) -> int:
    """The workspace's current serial; 0 while there is none (no schema yet, or no save), as State() says."""
    exists = backend.conn.execute("SELECT to_regclass('reconciler_workspaces')").fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = backend.conn.execute(
        "SELECT serial FROM reconciler_workspaces WHERE workspace = %s", (backend.workspace,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def wait_until(run: Running, predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.01) -> bool:
    """True once `predicate` holds while the process still runs; False if it ended (or time ran out) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            return False
        if predicate():
            return run.proc.poll() is None
        time.sleep(interval)
    return False


def kill(run: Running) -> None:
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(timeout=10)


def created(log: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Tasks Novita created (whatever it answered: 200, or handled then dropped or answered an error by a ghost
    fault; the log records the task id it made) and PUTs completed, counted."""
    out: dict[str, Counter[str]] = {"trainings": Counter(), "generations": Counter(), "uploads": Counter()}
    for r in log:
        summary = r.get("body_summary") or {}
        made = r.get("status") == 200 or r.get("fault") == "drop-after" or bool(summary.get("task_id"))
        if r.get("endpoint") == "training-create" and made:
            out["trainings"][summary.get("name", "?")] += 1
        elif r.get("endpoint") in ("txt2img", "img2img") and made:
            out["generations"][summary.get("prompt", "?")] += 1
        elif r.get("endpoint") == "upload" and made:
            out["uploads"][summary.get("assets_id", "?")] += 1
    return out


def storage_auth_refusals(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Storage requests the simulator refused because they carried an Authorization header (400)."""
    return [r for r in log if r.get("endpoint") in ("upload", "download") and r.get("status") == 400]

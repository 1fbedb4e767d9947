"""Hostile answers through a whole apply: each ends as a failed resource with a clear error (exit 1), never a
traceback or a hang, and nothing is written outside the output folders and the state folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import QUICK_WAITS, SimProcess, make_project, start_sim
from tests.reliability.hostile_proxy import hostile_proxy

pytestmark = pytest.mark.e2e


def _task_result(mutate: Any) -> Any:
    def rewrite(method: str, path: str, status: int, body: bytes) -> Any:
        if method == "GET" and path.startswith("/v3/async/task-result") and status == 200:
            data = json.loads(body)
            if data.get("task", {}).get("status") == "TASK_STATUS_SUCCEED":
                return mutate(data)
        return None

    return rewrite


def _training(mutate: Any, listing: bool = False) -> Any:
    """Rewrite the training status answers (or the training list) once the task exists."""

    def rewrite(method: str, path: str, status: int, body: bytes) -> Any:
        wanted = path.split("?")[0] == "/v3/training" if listing else path.startswith("/v3/training/subject")
        if method == "GET" and wanted and status == 200:
            return mutate(json.loads(body))
        return None

    return rewrite


def _json(data: Any) -> tuple[int, bytes, dict[str, str]]:
    return 200, json.dumps(data).encode(), {"Content-Type": "application/json"}


def _images(url: str) -> Any:
    def mutate(data: dict[str, Any]) -> Any:
        for image in data.get("images", []):
            image["image_url"] = url
        return _json(data)

    return mutate


HOSTILE = {
    "file-scheme-image-url": (_task_result(_images("file:///etc/passwd")), "Generation/alice-portraits"),
    "traversal-image-url": (
        _task_result(_images("http://127.0.0.1:9/s3/../../../../tmp/evil/../../etc/cron.d/x.png")),
        "Generation/alice-portraits",
    ),
    "malformed-json": (_task_result(lambda d: (200, b'{"task": {"status": "TASK_STATUS_SUCC', {})), "Generation/"),
    "wrong-types": (_task_result(lambda d: _json({"task": "yes", "images": {"a": 1}})), "Generation/"),
    "missing-fields": (_task_result(lambda d: _json({})), "Generation/"),
    "huge-body": (_task_result(lambda d: (200, b'{"x": "' + b"a" * (40 * 1024 * 1024) + b'"}', {})), "Generation/"),
    "unknown-status": (
        _task_result(lambda d: _json({**d, "task": {**d["task"], "status": "TASK_STATUS_EXPLODED"}})),
        "Generation/",
    ),
    "images-not-images": (_task_result(_images("data:text/plain,hello")), "Generation/"),
    "training-malformed-json": (_training(lambda d: (200, b'{"task_status": "SUCC', {})), "LoraModel/alice-v1"),
    "training-wrong-types": (
        _training(lambda d: _json({"task_id": {"a": 1}, "task_status": ["x"], "models": "none"})),
        "LoraModel/alice-v1",
    ),
    "training-unknown-status": (_training(lambda d: _json({**d, "task_status": "EXPLODED"})), "LoraModel/alice-v1"),
    "training-model-without-name": (
        _training(lambda d: _json({**d, "task_status": "SUCCESS", "models": [{"model_status": "SERVING"}]})),
        "LoraModel/alice-v1",
    ),
    "training-list-malformed": (_training(lambda d: (200, b"<html>oops</html>", {}), listing=True), "Novita GET"),
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim", "--ipm-txt2img", "0", "--ipm-img2img", "0")
    yield server
    server.stop()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_answer_fails_the_resource_cleanly(tmp_path: Path, sim: SimProcess, case: str) -> None:
    rewrite, failed = HOSTILE[case]
    before = {p for p in tmp_path.rglob("*") if "sim" not in p.parts}
    with hostile_proxy(sim.base_url, rewrite) as base:
        project = make_project(tmp_path, sim)
        project.env["NOVITA_API_BASE"] = base
        project.env.update(QUICK_WAITS)  # the retries of a hostile answer, backed off at a quarter
        result = project.apply(timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Error: {failed}" in result.stderr, result.stderr
    created = {p for p in tmp_path.rglob("*") if "sim" not in p.parts} - before
    outside = [
        p
        for p in created
        if not p.is_relative_to(project.root / "outputs")
        and not p.is_relative_to(project.root / "state")
        and not p.is_relative_to(project.root / "manifests")
        and p != project.root
        and p not in (project.root / "outputs", project.root / "state")
    ]
    assert outside == [], outside
    assert not any(p.suffix == ".part" for p in created)

"""Sidecars for tests: valid ones (their identity is the hash of the request they record) and raw records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.desired.resources import generation_identity
from reconciler.outputs.sidecar import Sidecar, SidecarImage

REQUEST: dict[str, Any] = {"extra": {"response_image_type": "png"}, "request": {"prompt": "a portrait", "image_num": 1}}


def identity_of(request: dict[str, Any] = REQUEST, task_type: str = "txt2img") -> str:
    return generation_identity(task_type, request["request"], request["extra"], None)


def sidecar(name: str, files: list[tuple[Path | str, str]], request: dict[str, Any] = REQUEST) -> Sidecar:
    """A sidecar of `name` whose images are `files` (path or name, sha256), with a true identity."""
    return Sidecar(
        generation=name,
        identity=identity_of(request),
        images=tuple(SidecarImage(Path(f).name, h) for f, h in files),
        task_id="task-1",
        task_type="txt2img",
        request=request,
        seed="7",
    )

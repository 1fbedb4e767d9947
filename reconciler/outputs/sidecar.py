"""The sidecar record: what a generation's run was, beside its images and in the outputs remote. Built, parsed,
checked and located here only.

`<output>/<stem>.reconciler.json` (and the outputs remote's `generations/<name>/<identity>.json`, the same bytes)
holds the generation's name, its matrix and axes, its identity, the task id and type, the request as sent (with
its `extra`; an init image as its hash), the seed, each image's file name and sha256, and when it was written.
It is what adopts a run after a state loss, so it is read as untrusted input: `parse` refuses (`BadSidecar`, with
what is wrong) a record that is not JSON, too large, whose file names are not plain image names, whose hashes are
not sha256, or whose identity is not the one its own request hashes to (a sidecar without its task type or request,
from an older writer, cannot be checked and is refused too). Unknown fields are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.desired.resources import generation_identity
from reconciler.filenames import SIDECAR_SUFFIX, hash_problem, name_problem
from reconciler.outputs.guard import OutputFolder
from reconciler.state import now_iso

if TYPE_CHECKING:
    from reconciler.desired.resources import DesiredGeneration
    from reconciler.state import GenerationEntry

MAX_BYTES = 1 << 20  # a sidecar of a few images is a few kB; anything past this is not one reconciler wrote
MAX_IMAGES = 1000  # Novita returns at most a handful per task


class BadSidecar(ValueError):
    """A sidecar that fails a check: `problem` says what (its source is named by the caller)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class SidecarImage:
    file: str  # a plain file name in the generation's output folder
    sha256: str


@dataclass(frozen=True)
class Sidecar:
    generation: str
    identity: str
    images: tuple[SidecarImage, ...]
    task_id: str | None = None
    task_type: str | None = None
    request: dict[str, Any] | None = None  # {"extra": ..., "request": ...}: as sent, an init image as its hash
    seed: str | None = None
    matrix: str | None = None
    axes: dict[str, Any] = field(default_factory=dict)
    written_at: str = ""

    @classmethod
    def of_run(cls, gen: DesiredGeneration, entry: GenerationEntry, seed: str | None) -> Sidecar:
        """The sidecar of a run apply just finished downloading (`entry.files` are its images)."""
        return cls.of_entry(entry, seed=seed, task_type=gen.task_type, axes=dict(gen.axes))

    @classmethod
    def of_entry(
        cls,
        entry: GenerationEntry,
        *,
        seed: str | None = None,
        task_type: str | None = None,
        axes: dict[str, Any] | None = None,
    ) -> Sidecar:
        """The sidecar of a finished run from its state entry (a remote configured after the fact)."""
        return cls(
            generation=entry.name,
            identity=entry.identity,
            images=tuple(SidecarImage(Path(f.path).name, f.sha256) for f in entry.files),
            task_id=entry.task_id,
            task_type=task_type or str(entry.attributes.get("type") or "") or None,
            request=entry.request,
            seed=seed if seed is not None else entry.seed,
            matrix=entry.matrix,
            axes=axes if axes is not None else {str(k): v for k, v in entry.axes},
            written_at=now_iso(),
        )

    def to_json(self) -> str:
        record = {
            "generation": self.generation,
            "matrix": self.matrix,
            "axes": self.axes,
            "identity": self.identity,
            "task_id": self.task_id,
            "task_type": self.task_type,
            "request": self.request,
            "seed": self.seed,
            "images": [{"file": i.file, "sha256": i.sha256} for i in self.images],
            "written_at": self.written_at,
        }
        return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def recomputed_identity(self) -> str | None:
        """The identity its request hashes to; None when it does not record enough to tell."""
        sent = self.request or {}
        request, extra = sent.get("request"), sent.get("extra")
        if not self.task_type or not isinstance(request, dict) or not isinstance(extra, dict):
            return None
        request = dict(request)
        init_image = request.pop("init_image_sha256", None)
        if init_image is not None and not isinstance(init_image, str):
            return None
        return generation_identity(self.task_type, request, extra, init_image)

    def files(self, folder: OutputFolder) -> list[tuple[Path, str]]:
        """(path, sha256) of its images in the output folder `folder` (each name through the write guard)."""
        return [(folder.path(i.file), i.sha256) for i in self.images]


def sidecar_name(stem: str) -> str:
    """The sidecar's file name in a generation's output folder (and in each history folder)."""
    return f"{stem}{SIDECAR_SUFFIX}"


def parse(raw: bytes, *, generation: str | None = None, identity: str | None = None) -> Sidecar:
    """A sidecar from its bytes, checked (see the module's docstring); `generation` and `identity`: what its key or
    place says it is, which it must match. Raises BadSidecar."""
    if len(raw) > MAX_BYTES:
        raise BadSidecar(f"it is over {MAX_BYTES:,} bytes, too large for a sidecar")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadSidecar(f"it is not valid JSON (truncated or corrupt: {exc})") from None
    if not isinstance(data, dict):
        raise BadSidecar("it is not a JSON object")
    images = data.get("images")
    if not isinstance(images, list) or not images:
        raise BadSidecar("it lists no images")
    if len(images) > MAX_IMAGES:
        raise BadSidecar(f"it lists {len(images):,} images, more than any run makes")
    found: list[SidecarImage] = []
    for n, image in enumerate(images):
        if not isinstance(image, dict):
            raise BadSidecar(f"image {n + 1} is not an object")
        problem = name_problem(image.get("file")) or hash_problem(image.get("sha256"))
        if problem is not None:
            raise BadSidecar(f"image {n + 1}: {problem}")
        found.append(SidecarImage(image["file"], image["sha256"]))
    if len({i.file for i in found}) != len(found):
        raise BadSidecar("it names one file twice")
    sidecar = Sidecar(
        generation=_text(data, "generation") or generation or "",
        identity=_text(data, "identity") or "",
        images=tuple(found),
        task_id=_text(data, "task_id"),
        task_type=_text(data, "task_type"),
        request=data["request"] if isinstance(data.get("request"), dict) else None,
        seed=_text(data, "seed"),
        matrix=_text(data, "matrix"),
        axes=data["axes"] if isinstance(data.get("axes"), dict) else {},
        written_at=_text(data, "written_at") or "",
    )
    _check_identity(sidecar, generation, identity)
    return sidecar


def _check_identity(sidecar: Sidecar, generation: str | None, identity: str | None) -> None:
    if hash_problem(sidecar.identity) is not None:
        raise BadSidecar("its identity is not a sha256")
    if identity is not None and sidecar.identity != identity:
        raise BadSidecar(f"it records identity {sidecar.identity[:12]}… but is stored as {identity[:12]}…")
    if generation is not None and sidecar.generation != generation:
        raise BadSidecar(f"it records Generation/{sidecar.generation}, not Generation/{generation}")
    recomputed = sidecar.recomputed_identity()
    if recomputed is None:
        raise BadSidecar("it records no task type or request to check its identity against (an older writer)")
    if recomputed != sidecar.identity:
        raise BadSidecar(f"its identity {sidecar.identity[:12]}… is not the hash of the request it records")


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "" or isinstance(value, dict | list | bool):
        return None
    return str(value)


def read_local(path: Path, generation: str, identity: str | None = None) -> Sidecar:
    """The sidecar at `path` (in a generation's output or history folder), checked (and that it records
    `identity`, when given). Raises BadSidecar or OSError (FileNotFoundError when there is none)."""
    with path.open("rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    return parse(raw, generation=generation, identity=identity)

"""Shared builders for the manifest tests: a tiny project in a temporary folder."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

DATASET = """\
apiVersion: reconciler/v1
kind: Dataset
metadata:
  name: ds
spec:
  images:
    - ../img/*.jpg
"""

MODEL = """\
apiVersion: reconciler/v1
kind: LoraModel
metadata:
  name: lm
spec:
  dataset: ds
  base_model: v1-5-pruned-emaonly
  expert_setting:
    instance_prompt: a photo of ohwx man
    class_prompt: person
"""

GENERATION = """\
apiVersion: reconciler/v1
kind: Generation
metadata:
  name: gen
spec:
  model_name: m.safetensors
  prompt: hello
  output: ../out/gen
"""

_CACHE: dict[tuple[str, int], bytes] = {}


def image_bytes(fmt: str = "JPEG", seed: int = 0, size: tuple[int, int] = (16, 16)) -> bytes:
    """A small real image (cached), distinct per seed."""
    key = (f"{fmt}{size}", seed)
    if key not in _CACHE:
        buffer = io.BytesIO()
        Image.new("RGB", size, (seed * 40 % 256, 100, 200)).save(buffer, fmt)
        _CACHE[key] = buffer.getvalue()
    return _CACHE[key]


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def project(root: Path, files: dict[str, str | bytes | None]) -> None:
    """The base project (img/a.jpg, b.jpg, c.jpg; m/ds.yaml, m/lm.yaml, m/gen.yaml) with `files` replacing,
    adding or (None) removing files."""
    base: dict[str, str | bytes | None] = {
        "img/a.jpg": image_bytes(seed=1),
        "img/b.jpg": image_bytes(seed=2),
        "img/c.jpg": image_bytes(seed=3),
        "m/ds.yaml": DATASET,
        "m/lm.yaml": MODEL,
        "m/gen.yaml": GENERATION,
    }
    base.update(files)
    write(root, {name: content for name, content in base.items() if content is not None})

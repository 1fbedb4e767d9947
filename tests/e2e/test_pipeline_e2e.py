"""Uploads pipelined into trainings, through the real CLI and the simulator over a socket: a training is
submitted as soon as its own images are up, while the other datasets' uploads go on."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import SimProcess, make_project
from tests.manifest_helpers import image_bytes

DATASETS = 4
IMAGES = 6


def _source(folder: Path) -> Path:
    for d in range(DATASETS):
        photos = folder / "photos" / f"set-{d}"
        photos.mkdir(parents=True)
        for i in range(IMAGES):
            (photos / f"{i}.jpg").write_bytes(image_bytes(seed=d * IMAGES + i + 1))
        (folder / f"set-{d}.yaml").write_text(
            f"""apiVersion: reconciler/v1
kind: Dataset
metadata: {{name: set-{d}}}
spec:
  images: [photos/set-{d}/*.jpg]
---
apiVersion: reconciler/v1
kind: LoraModel
metadata: {{name: model-{d}}}
spec:
  dataset: set-{d}
  base_model: v1-5-pruned-emaonly
  expert_setting: {{instance_prompt: a photo of ohwx{d} person, class_prompt: person}}
"""
        )
    return folder


def test_each_training_is_submitted_once_its_own_images_are_up(tmp_path: Path, sim: SimProcess) -> None:
    project = make_project(tmp_path, sim, _source(tmp_path / "src"))
    done = project.apply("--parallelism", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    log = sim.requests()
    uploaded_at = {r["body_summary"]["assets_id"]: i for i, r in enumerate(log) if r["endpoint"] == "upload"}
    creates = [(i, r["body_summary"]["assets_ids"]) for i, r in enumerate(log) if r["endpoint"] == "training-create"]
    assert len(uploaded_at) == DATASETS * IMAGES and len(creates) == DATASETS
    for at, assets in creates:
        assert all(uploaded_at[a] < at for a in assets)  # its own images first
    last_upload = max(uploaded_at.values())
    before = [at for at, _ in creates if at < last_upload]
    assert len(before) == DATASETS - 1  # every training but the last went in while other uploads went on
    first_create = creates[0][0]  # (first come, first served: none; a loaded machine may let a few more in first)
    assert sum(1 for i in uploaded_at.values() if i > first_create) >= (DATASETS - 2) * IMAGES

"""The request budget of a no-op plan: the training list pages and nothing else.

A converged project (3 models, each on its own dataset, one generation) in an account that also holds 250
trainings of another team: `plan` with nothing changed makes exactly ceil(tasks / 100) `GET /v3/training`
requests (counted from the simulator's request log) and no other request, so a regression to per-task status
calls, or to a smaller page size, shows up here.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

from tests.e2e.harness import REPO, make_project, start_sim

FOREIGN = 250
MODELS = 3


def _write_project(src: Path) -> None:
    photos = sorted((REPO / "manifests" / "photos" / "alice").glob("*.jpg"))
    docs = []
    for m in range(MODELS):
        folder = src / "photos" / f"set-{m}"
        folder.mkdir(parents=True)
        for photo in photos[m * 3 : m * 3 + 3]:
            shutil.copy(photo, folder / photo.name)
        docs.append(
            f"""apiVersion: reconciler/v1
kind: Dataset
metadata: {{name: set-{m}}}
spec:
  images: [photos/set-{m}/*.jpg]
---
apiVersion: reconciler/v1
kind: LoraModel
metadata: {{name: model-{m}}}
spec:
  dataset: set-{m}
  base_model: v1-5-pruned-emaonly
  width: 512
  height: 512
  expert_setting: {{instance_prompt: a photo of ohwx{m} person, class_prompt: person}}
"""
        )
    docs.append(
        """apiVersion: reconciler/v1
kind: Generation
metadata: {name: portrait}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a photo of ohwx0 person
  loras: [{model: model-0, strength: 0.7}]
  width: 256
  height: 256
  seed: 1
  output: ../outputs/portrait
"""
    )
    (src / "project.yaml").write_text("---\n".join(docs))


def test_noop_plan_lists_pages_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_project(src)
    sim = start_sim(tmp_path / "sim", "--seed-foreign", str(FOREIGN))
    try:
        project = make_project(tmp_path, sim, source=src)
        applied = project.apply(timeout=180)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        settled = project.run("plan", "--detailed-exitcode")  # a finished apply leaves nothing to do
        assert settled.returncode == 0, settled.stdout + settled.stderr

        before = len(sim.requests())
        result = project.run("plan", "--detailed-exitcode")
        assert result.returncode == 0, result.stdout + result.stderr
        made = Counter(r["endpoint"] for r in sim.requests()[before:])
    finally:
        sim.stop()
    assert made == Counter({"training-list": math.ceil((FOREIGN + MODELS) / 100)})

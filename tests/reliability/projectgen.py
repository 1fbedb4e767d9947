"""A generated project for the reliability suites: 5 models over 60 distinct small JPEGs (some shared between
datasets), 10 generations (one img2img), written to a temporary folder."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from tests.e2e.harness import API_KEY, REPO, Project, SimProcess

MODELS = 5
IMAGES_PER_MODEL = 12  # 60 distinct images; each dataset also borrows 2 of the next one's


def jpeg(seed: int, size: tuple[int, int] = (24, 24)) -> bytes:
    """A small real JPEG, distinct per seed (colour and a pixel pattern)."""
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    for i in range(8):
        img.putpixel(((seed + i * 3) % size[0], (seed // 7 + i) % size[1]), (255 - i, i * 20, seed % 256))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def model_doc(k: int, steps: int = 500, seed: int | None = None) -> str:
    extra = f"    seed: {seed}\n" if seed is not None else ""
    return (
        "apiVersion: reconciler/v1\nkind: Dataset\nmetadata:\n"
        f"  name: set{k}\nspec:\n  images:\n    - photos/set{k}/*.jpg\n"
        f"    - photos/set{(k + 1) % MODELS}/img00.jpg\n    - photos/set{(k + 1) % MODELS}/img01.jpg\n"
        "---\napiVersion: reconciler/v1\nkind: LoraModel\nmetadata:\n"
        f"  name: model{k}\nspec:\n  dataset: set{k}\n  base_model: v1-5-pruned-emaonly\n"
        "  expert_setting:\n"
        f"    instance_prompt: a photo of ohwx{k} person\n    class_prompt: person\n"
        f"    max_train_steps: {steps}\n{extra}"
    )


def generation_prompt(g: int) -> str:
    return f"portrait number {g} of ohwx{g % MODELS} person"


def generation_doc(g: int, prompt: str | None = None, seed: int | None = None) -> str:
    model = g % MODELS
    text = prompt or generation_prompt(g)
    spec = (
        f"  model_name: realisticVisionV51_v51VAE_94301.safetensors\n  prompt: {text}\n"
        f"  loras:\n    - {{model: model{model}, strength: 0.7}}\n"
        f"  width: 256\n  height: 256\n  image_num: {1 + g % 2}\n  seed: {seed if seed is not None else 100 + g}\n"
        f"  output: ../outputs/gen{g}\n"
    )
    if g == 0:
        spec = "  type: img2img\n  init_image: photos/set0/img05.jpg\n  strength: 0.5\n" + spec
    return f"apiVersion: reconciler/v1\nkind: Generation\nmetadata:\n  name: gen{g}\nspec:\n{spec}"


def write_manifests(root: Path, generations: int = 10) -> None:
    manifests = root / "manifests"
    for k in range(MODELS):
        folder = manifests / "photos" / f"set{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(IMAGES_PER_MODEL):
            (folder / f"img{i:02d}.jpg").write_bytes(jpeg(k * 100 + i))
        (manifests / f"model{k}.yaml").write_text(model_doc(k))
    gens = "---\n".join(generation_doc(g) for g in range(generations))
    (manifests / "generations.yaml").write_text(gens)


def make_generated_project(tmp: Path, sim: SimProcess, generations: int = 10) -> Project:
    root = tmp / "project"
    write_manifests(root, generations)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOVITA_", "RECONCILER_"))}
    env.update(NOVITA_API_KEY=API_KEY, NOVITA_API_BASE=sim.base_url, NO_COLOR="1", PYTHONPATH=str(REPO))
    return Project(root, sim, env)


def distinct_images() -> int:
    return MODELS * IMAGES_PER_MODEL

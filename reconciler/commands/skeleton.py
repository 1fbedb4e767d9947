"""`reconciler init`: the project skeleton, written only where nothing is yet.

A commented example of each kind (with placeholder photos drawn here, so `validate`, `plan --sim` and
`apply --sim` work with no edit), the JSON Schema the YAML language server completes them from, a
`reconciler.yaml` with every default commented, and a `.gitignore` for what is not project data (the lock,
the hash cache, the simulator's account and state, the local journal). An existing file is never overwritten, and
no example manifest is added to a manifests folder that already holds manifests (its resources would be applied).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.files import atomic_write
from reconciler.load import document_schema
from reconciler.load.config import CONFIG_FILE

SCHEMA_FILE = "reconciler.schema.json"
EXAMPLE = "manifests/example.yaml"
PHOTOS = "manifests/photos/example"
PHOTO_COUNT = 6

EXAMPLE_MANIFESTS = f"""\
# yaml-language-server: $schema=../{SCHEMA_FILE}
#
# An example of each kind of resource. `reconciler validate` checks them offline; `reconciler plan --sim`
# and `reconciler apply --sim` run them against a local simulator (no account, no key). Replace the
# placeholder photos in photos/example/ with 10 to 50 photos of one subject, then plan and apply for real.
# Paths are relative to this file. `reconciler models` lists the base models and samplers.

# A Dataset: the training images. Each entry is a glob, a file or a folder; `*.jpg` matches .JPG too.
apiVersion: reconciler/v1
kind: Dataset
metadata:
  name: example-photos              # [a-z0-9][a-z0-9-]*, unique per kind
spec:
  images:
    - photos/example/*.png
    # - path: photos/extra.jpg
    #   caption: a close-up portrait  # or a sidecar photos/extra.txt
---
# A LoraModel: a LoRA trained on a Dataset. Changing anything here trains it again (as a new task).
apiVersion: reconciler/v1
kind: LoraModel
metadata:
  name: example-v1
spec:
  type: subject                     # subject (a person) | style (needs a caption on every image)
  dataset: example-photos
  base_model: v1-5-pruned-emaonly   # SD 1.5; for SDXL: stable-diffusion-xl-base-1.0 at 1024x1024
  width: 512
  height: 512
  expert_setting:
    instance_prompt: a close photo of ohwx person
    class_prompt: person
    max_train_steps: 500
    # learning_rate: 1e-4
    # seed: 42
  components:                       # preprocessing, in this order
    - {{name: face_crop_region, args: {{ratio: 1.4}}}}
    - {{name: resize, args: {{width: 512, height: 512}}}}
    - {{name: face_restore, args: {{method: gfpgan_1.4, upscale: 1.0}}}}
---
# A Generation: images from a checkpoint and LoRAs, written to `output`. Only missing images are generated.
apiVersion: reconciler/v1
kind: Generation
metadata:
  name: example-portraits
spec:
  type: txt2img                     # txt2img | img2img (with init_image)
  model_name: realisticVisionV51_v51VAE_94301.safetensors   # a Novita checkpoint file name
  prompt: a photo of ohwx person, studio lighting
  negative_prompt: blurry, bad face
  loras:
    - {{model: example-v1, strength: 0.8}}   # our LoraModel; a Novita LoRA goes under model_name: x.safetensors
  width: 512
  height: 512
  image_num: 2
  seed: 42                          # a fixed seed gives the same images again; -1 is random
  sampler_name: Euler a
  output: ../outputs/example-portraits
"""

PROJECT_SETTINGS = """\
# Project settings for reconciler. Every key is optional; the values shown are the defaults.
# Precedence: command-line flag > environment variable > this file > default.
# No secret belongs here: the Novita key comes from NOVITA_API_KEY.
#
# state:
#   url: state/state.json            # where the state lives (RECONCILER_STATE_URL, --state)
#   workspace: default               # one of several named states (RECONCILER_WORKSPACE)
#   reconnect_window: 60             # seconds an apply rides out a lost database (RECONCILER_RECONNECT_WINDOW)
# outputs:
#   remote: s3://bucket/prefix       # also keep every image there (RECONCILER_OUTPUTS_REMOTE)
#   gallery: true                    # refresh the static gallery after an apply that wrote images
# apply:
#   parallelism: 16                  # uploads, submissions and downloads at once (--parallelism)
#   on_unanswered_submit: resubmit   # or hold: a generation submit that got no answer
#   ipm: {txt2img: 20, img2img: 10}  # images per minute the account allows (--ipm-txt2img, --ipm-img2img)
"""

GITIGNORE = """\
# reconciler: not project data
state/*.lock
state/.*.hashcache.json
state/*.backup
state/*.d/*/*.lock
state/*.d/*/.*.hashcache.json
state/*.d/*/*.backup
state/sim.json
state/.sim/
state/journal/
state/*.d/*/journal/
# the gallery is derived: `reconciler gallery` (and every apply) rebuilds it from the state and the outputs
gallery/
# outputs/ holds the generated images, kept one of two ways: commit them with the state (small projects), or
# keep them in an outputs remote (outputs.remote in reconciler.yaml), add `outputs/` here, and let
# `reconciler pull` write them back on another machine
"""


@dataclass
class Initialized:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path (why)"


def init_project(root: Path) -> Initialized:
    """Write the skeleton into `root`, skipping (and naming) whatever is already there."""
    done = Initialized()
    manifests = root / "manifests"
    has_manifests = manifests.is_dir() and any(
        p.suffix in (".yaml", ".yml") for p in manifests.rglob("*") if p.is_file()
    )
    if has_manifests:
        done.skipped.append("the example manifests (manifests/ already holds manifests; they would be applied too)")
    else:
        _write(root, EXAMPLE, EXAMPLE_MANIFESTS, done)
        for index in range(1, PHOTO_COUNT + 1):
            _write(root, f"{PHOTOS}/photo-{index:02d}.png", _placeholder(index), done)
    _write(root, SCHEMA_FILE, json.dumps(document_schema(), indent=2) + "\n", done)
    _write(root, CONFIG_FILE, PROJECT_SETTINGS, done)
    _write(root, ".gitignore", GITIGNORE, done)
    return done


def _write(root: Path, relative: str, data: str | bytes, done: Initialized) -> None:
    path = root / relative
    if path.exists():
        done.skipped.append(f"{relative} (already there)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    done.written.append(relative)


def _placeholder(index: int) -> bytes:
    """A small distinct PNG standing in for a photo: a coloured ground, a head-and-shoulders silhouette."""
    from PIL import Image, ImageDraw

    hue = (index * 47) % 256
    image = Image.new("RGB", (256, 256), (hue, 180 - index * 10, 255 - hue))
    draw = ImageDraw.Draw(image)
    shade = (60 + index * 20, 50 + index * 12, 40 + index * 8)
    draw.ellipse((88, 40 + index * 2, 168, 130 + index * 2), fill=shade)
    draw.ellipse((48, 140, 208, 300), fill=shade)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()

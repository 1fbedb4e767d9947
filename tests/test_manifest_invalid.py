# ruff: noqa: E501  (the expected lines are the exact text users see)
"""Invalid manifests → the exact problem lines a user sees (file:line:col: Kind/name: path: message)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.load import load_manifests

from .manifest_helpers import DATASET, GENERATION, MODEL, image_bytes, project

STYLE = MODEL.replace("spec:\n", "spec:\n  type: style\n").replace(
    "  expert_setting:\n    instance_prompt: a photo of ohwx man\n    class_prompt: person\n", ""
)
IMG2IMG = GENERATION.replace("spec:\n", "spec:\n  type: img2img\n")


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height (pixels are never decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + end


def _many(count: int) -> dict[str, str | bytes | None]:
    return {f"many/{i:02d}.jpg": image_bytes(seed=i) for i in range(count)}


CASES: list[tuple[str, dict[str, str | bytes | None], list[str]]] = [
    # -- YAML -----------------------------------------------------------------------------------------
    (
        "yaml-syntax-unclosed-flow",
        {"m/lm.yaml": MODEL + "  components: [1, 2\n"},
        [
            "m/lm.yaml:11:15: YAML syntax error: while parsing a flow sequence; did not find expected ',' or ']' (the `[` opened here is never closed)",
        ],
    ),
    (
        "yaml-syntax-tab-indent",
        {"m/ds.yaml": DATASET.replace("  images:", "\timages:")},
        [
            "m/ds.yaml:6:1: YAML syntax error: while scanning for the next token; found character that cannot start any token (a tab: YAML indents with spaces only)",
        ],
    ),
    (
        "yaml-colon-in-an-unquoted-value",
        {"m/gen.yaml": GENERATION.replace("prompt: hello", "prompt: portrait, style: anime")},
        [
            'm/gen.yaml:7:26: YAML syntax error: mapping values are not allowed in this context; a value that contains `: ` must be quoted, e.g. prompt: "portrait, style: anime"',
        ],
    ),
    (
        "yaml-unquoted-glob-is-an-alias",
        {"m/ds.yaml": DATASET.replace("    - ../img/*.jpg", "    - *.jpg")},
        [
            'm/ds.yaml:7:8: YAML syntax error: while scanning an alias; did not find expected alphabetic or numeric character; a value starting with `*` is read as an alias; quote it, e.g. "*.jpg"',
        ],
    ),
    (
        "yaml-unclosed-quote-points-at-the-quote",
        {"m/gen.yaml": GENERATION.replace("prompt: hello", 'prompt: "hello')},
        [
            "m/gen.yaml:7:11: YAML syntax error: while scanning a quoted scalar; found unexpected end of stream (the quote opened here is never closed)",
        ],
    ),
    (
        "yaml-value-starting-with-a-brace",
        {"m/gen.yaml": GENERATION.replace("prompt: hello", "prompt: {subject} in a field")},
        [
            'm/gen.yaml:7:21: YAML syntax error: while parsing a block mapping; did not find expected key; a value starting with `{` is read as a mapping or list; quote it, e.g. prompt: "{subject} in a field"',
        ],
    ),
    (
        "yaml-missing-document-separator",
        {"m/two.yaml": DATASET.replace("name: ds", "name: ds2") + MODEL.replace("name: lm", "name: lm2")},
        [
            "m/two.yaml:8:1: Dataset/ds2: apiVersion: duplicate key (first given at line 1); a second document starts here? put a line `---` before it",
        ],
    ),
    (
        "yaml-duplicate-key-spec-field",
        {"m/lm.yaml": MODEL + "  dataset: other\n"},
        [
            "m/lm.yaml:11:3: LoraModel/lm: spec.dataset: duplicate key (first given at line 6); remove one of them",
        ],
    ),
    (
        "yaml-duplicate-key-top-level",
        {"m/ds.yaml": DATASET + "kind: Dataset\n"},
        [
            "m/ds.yaml:8:1: Dataset/ds: kind: duplicate key (first given at line 2); a second document starts here? put a line `---` before it",
        ],
    ),
    (
        "yaml-not-utf8",
        {"m/ds.yaml": DATASET.encode() + b"# caf\xe9\n"},
        [
            "m/ds.yaml:8:6: not UTF-8 text (byte 0xe9); save the file as UTF-8",
        ],
    ),
    (
        "yaml-list-document",
        {"m/x.yaml": "- a\n- b\n"},
        [
            "m/x.yaml:1:1: a document must be a mapping with apiVersion, kind, metadata and spec; got a list",
        ],
    ),
    (
        "yaml-scalar-document",
        {"m/x.yaml": "# just a word\nhello\n"},
        [
            'm/x.yaml:2:1: a document must be a mapping with apiVersion, kind, metadata and spec; got "hello"',
        ],
    ),
    (
        "yaml-unsupported-tag",
        {"m/gen.yaml": GENERATION.replace("prompt: hello", "prompt: !include prompt.txt")},
        [
            "m/gen.yaml:7:11: Generation/gen: spec.prompt: unsupported YAML tag `!include`",
        ],
    ),
    # -- envelope -------------------------------------------------------------------------------------
    (
        "kind-missing",
        {"m/ds.yaml": DATASET.replace("kind: Dataset\n", "")},
        [
            "m/ds.yaml:1:1: kind: required field missing; expected `Dataset`, `LoraModel` or `Generation`",
        ],
    ),
    (
        "kind-unknown-did-you-mean",
        {"m/ds.yaml": DATASET.replace("kind: Dataset", "kind: Datset")},
        [
            'm/ds.yaml:2:7: kind: unknown kind "Datset"; did you mean `Dataset`?',
        ],
    ),
    (
        "api-version-wrong",
        {"m/ds.yaml": DATASET.replace("reconciler/v1", "reconciler/v2")},
        [
            'm/ds.yaml:1:13: Dataset/ds: apiVersion: expected `reconciler/v1`; got "reconciler/v2"',
        ],
    ),
    (
        "metadata-missing",
        {"m/gen.yaml": GENERATION.replace("metadata:\n  name: gen\n", "")},
        [
            "m/gen.yaml:1:1: metadata: required field missing",
        ],
    ),
    (
        "name-bad-characters",
        {"m/ds.yaml": DATASET.replace("name: ds", "name: Alice_Photos")},
        [
            'm/ds.yaml:4:9: Dataset/Alice_Photos: metadata.name: must be 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit ([a-z0-9][a-z0-9-]{0,62}); got "Alice_Photos"',
            'm/lm.yaml:6:12: LoraModel/lm: spec.dataset: no Dataset named "ds" (the Datasets are `Alice_Photos`)',
        ],
    ),
    (
        "name-too-long",
        {"m/gen.yaml": GENERATION.replace("name: gen", "name: " + "g" * 64)},
        [
            'm/gen.yaml:4:9: Generation/gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg: metadata.name: must be 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit ([a-z0-9][a-z0-9-]{0,62}); got "ggggggggggggggggggggggggggggggggggggggggggggggggggggggggg..."',
        ],
    ),
    (
        "top-level-unknown-key",
        {"m/ds.yaml": DATASET.replace("spec:", "specs:")},
        [
            "m/ds.yaml:1:1: Dataset/ds: spec: required field missing",
            "m/ds.yaml:5:1: Dataset/ds: specs: unknown field; did you mean `spec`?",
        ],
    ),
    (
        "labels-not-strings",
        {"m/ds.yaml": DATASET.replace("  name: ds\n", "  name: ds\n  labels: {tier: 1}\n")},
        [
            "m/ds.yaml:5:18: Dataset/ds: metadata.labels.tier: expected a string; got 1",
        ],
    ),
    (
        "duplicate-name-across-files",
        {"m/ds2.yaml": DATASET},
        [
            "m/ds2.yaml:4:9: Dataset/ds: metadata.name: duplicate name: Dataset/ds is already defined at m/ds.yaml:4:9",
        ],
    ),
    # -- Dataset --------------------------------------------------------------------------------------
    (
        "images-empty-list",
        {"m/ds.yaml": DATASET.replace("  images:\n    - ../img/*.jpg\n", "  images: []\n")},
        [
            "m/ds.yaml:6:3: Dataset/ds: spec.images: needs at least 1 item; got none",
        ],
    ),
    (
        "images-entry-number",
        {"m/ds.yaml": DATASET + "    - 5\n"},
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: expected a path (file, folder or glob) or a mapping {path, caption}; got 5",
        ],
    ),
    (
        "image-item-unknown-key",
        {"m/ds.yaml": DATASET + "    - {path: ../img/a.jpg, captoin: hi}\n"},
        [
            "m/ds.yaml:8:28: Dataset/ds: spec.images[1].captoin: unknown field; did you mean `caption`?",
        ],
    ),
    (
        "image-caption-empty",
        {"m/ds.yaml": DATASET + '    - {path: ../img/a.jpg, caption: ""}\n'},
        [
            "m/ds.yaml:8:37: Dataset/ds: spec.images[1].caption: must not be empty",
        ],
    ),
    (
        "image-caption-too-long",
        {"m/ds.yaml": DATASET + "    - {path: ../img/a.jpg, caption: " + "x" * 1025 + "}\n"},
        [
            "m/ds.yaml:8:37: Dataset/ds: spec.images[1].caption: must be 1 to 1024 characters long; got 1025",
        ],
    ),
    (
        "glob-matches-nothing",
        {"m/ds.yaml": DATASET + "    - ../img/*.png\n"},
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: `../img/*.png` matches no .png, .jpg, .jpeg or .webp file (extensions match in any case)",
        ],
    ),
    (
        "file-missing",
        {"m/ds.yaml": DATASET + "    - ../img/nope.jpg\n"},
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: `../img/nope.jpg`: no such file or folder (img/nope.jpg)",
        ],
    ),
    (
        "folder-without-images",
        {"empty/readme.md": "nothing\n", "m/ds.yaml": DATASET + "    - ../empty\n"},
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: folder `../empty` holds no .png, .jpg, .jpeg or .webp file",
        ],
    ),
    (
        "not-an-image-with-jpg-extension",
        {"img/bad.jpg": b"this is text, not a jpeg"},
        [
            "m/ds.yaml:7:7: Dataset/ds: spec.images[0]: img/bad.jpg is not a png, jpeg or webp image (checked by its content, not its name)",
        ],
    ),
    (
        "gif-named-png",
        {"img/anim.png": b"GIF89a\x01\x00\x01\x00", "m/ds.yaml": DATASET + "    - ../img/anim.png\n"},
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: img/anim.png is a GIF image by its content; Novita accepts png, jpeg and webp",
        ],
    ),
    (
        "path-escapes-with-dotdot",
        {"outside.jpg": image_bytes(), "m/ds.yaml": DATASET + "    - ../../outside.jpg\n"},
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: `../../outside.jpg` resolves to <PARENT>/outside.jpg, outside the project folder <ROOT>",
        ],
    ),
    (
        "same-image-two-captions",
        {"m/ds.yaml": DATASET + "    - {path: ../img/a.jpg, caption: one}\n    - {path: ../img/a.jpg, caption: two}\n"},
        [
            'm/ds.yaml:9:37: Dataset/ds: spec.images[2].caption: img/a.jpg already has the caption "one" from spec.images[1]; one image cannot have two captions',
        ],
    ),
    (
        "dataset-51-images",
        {**_many(51), "m/ds.yaml": DATASET.replace("../img/*.jpg", "../many")},
        [
            "m/ds.yaml:6:3: Dataset/ds: spec.images: 51 images after removing duplicates, but LoraModel/lm trains on it and Novita accepts 1 to 50",
        ],
    ),
    (
        "style-without-captions",
        {"m/lm.yaml": STYLE, "img/b.txt": "a caption for b\n"},
        [
            "m/ds.yaml:7:7: Dataset/ds: spec.images[0]: no caption for img/a.jpg, img/c.jpg, but LoraModel/lm is style training, which needs a caption on every image (add `caption:` or a sidecar <image>.txt)",
        ],
    ),
    # -- LoraModel ------------------------------------------------------------------------------------
    (
        "unknown-field-did-you-mean",
        {"m/lm.yaml": MODEL + "    max_train_step: 500\n"},
        [
            "m/lm.yaml:11:5: LoraModel/lm: spec.expert_setting.max_train_step: unknown field; did you mean `max_train_steps`?",
        ],
    ),
    (
        "unknown-field-no-close-match",
        {"m/lm.yaml": MODEL + "  colour: red\n"},
        [
            "m/lm.yaml:11:3: LoraModel/lm: spec.colour: unknown field; expected one of `base_model`, `components`, `dataset`, `expert_setting`, `height`, `matrix`, `type`, `width`",
        ],
    ),
    (
        "base-model-enum-nearest",
        {"m/lm.yaml": MODEL.replace("v1-5-pruned-emaonly", "v1-5-pruned")},
        [
            'm/lm.yaml:7:15: LoraModel/lm: spec.base_model: "v1-5-pruned" is not one of Novita\'s base models; did you mean `v1-5-pruned-emaonly`? (all: `reconciler models`)',
        ],
    ),
    (
        "base-model-by-family",
        {
            "m/lm.yaml": MODEL.replace("v1-5-pruned-emaonly", "sd-1.5"),
            "m/lm2.yaml": MODEL.replace("name: lm", "name: lm2").replace(
                "v1-5-pruned-emaonly", "stable-diffusion-v1-5"
            ),
            "m/lm3.yaml": MODEL.replace("name: lm", "name: lm3").replace("v1-5-pruned-emaonly", "SDXL"),
        },
        [
            'm/lm.yaml:7:15: LoraModel/lm: spec.base_model: "sd-1.5" is not one of Novita\'s base models; for SD 1.5 use `v1-5-pruned-emaonly` (the original) or a fine-tune of it: `epicrealism_naturalSin_121250`, `chilloutmix_NiPrunedFp32Fix`, `abyssorangemix3AOM3_aom3a3_10864`, `dreamshaper_8_93211`, `WFChild_v1.0`, `majichenmixrealistic_v10`, `realisticVisionV51_v51VAE_94301`, `realisticVisionV40_v40VAE_81510`, `somboy_v10_172675` (all: `reconciler models`)',
            'm/lm2.yaml:7:15: LoraModel/lm2: spec.base_model: "stable-diffusion-v1-5" is not one of Novita\'s base models; for SD 1.5 use `v1-5-pruned-emaonly` (the original) or a fine-tune of it: `epicrealism_naturalSin_121250`, `chilloutmix_NiPrunedFp32Fix`, `abyssorangemix3AOM3_aom3a3_10864`, `dreamshaper_8_93211`, `WFChild_v1.0`, `majichenmixrealistic_v10`, `realisticVisionV51_v51VAE_94301`, `realisticVisionV40_v40VAE_81510`, `somboy_v10_172675` (all: `reconciler models`)',
            'm/lm3.yaml:7:15: LoraModel/lm3: spec.base_model: "SDXL" is not one of Novita\'s base models; for SDXL use `stable-diffusion-xl-base-1.0` (the original) or a fine-tune of it: `dreamshaperXL09Alpha_alpha2Xl10_91562`, `protovisionXLHighFidelity3D_release0630Bakedvae_154359`, `sdxlUnstableDiffusers_v11_216694`, `epicrealismXL_v10_247189`, `yesmixXL_v10_283329`, `animagineXLV31_v31_325600` (all: `reconciler models`)',
        ],
    ),
    (
        "base-model-nothing-close-lists-all-by-family",
        {"m/lm.yaml": MODEL.replace("v1-5-pruned-emaonly", "flux-dev")},
        [
            'm/lm.yaml:7:15: LoraModel/lm: spec.base_model: "flux-dev" is not one of Novita\'s base models. SD 1.5: `v1-5-pruned-emaonly`, `epicrealism_naturalSin_121250`, `chilloutmix_NiPrunedFp32Fix`, `abyssorangemix3AOM3_aom3a3_10864`, `dreamshaper_8_93211`, `WFChild_v1.0`, `majichenmixrealistic_v10`, `realisticVisionV51_v51VAE_94301`, `realisticVisionV40_v40VAE_81510`, `somboy_v10_172675`; SDXL: `stable-diffusion-xl-base-1.0`, `dreamshaperXL09Alpha_alpha2Xl10_91562`, `protovisionXLHighFidelity3D_release0630Bakedvae_154359`, `sdxlUnstableDiffusers_v11_216694`, `epicrealismXL_v10_247189`, `yesmixXL_v10_283329`, `animagineXLV31_v31_325600`',
        ],
    ),
    (
        "sampler-nothing-close-lists-all",
        {"m/gen.yaml": GENERATION + "  sampler_name: restart\n"},
        [
            'm/gen.yaml:9:17: Generation/gen: spec.sampler_name: "restart" is not one of the 20 allowed values: `Euler a`, `Euler`, `LMS`, `Heun`, `DPM2`, `DPM2 a`, `DPM++ 2S a`, `DPM++ 2M`, `DPM++ SDE`, `DPM fast`, `DPM adaptive`, `LMS Karras`, `DPM2 Karras`, `DPM2 a Karras`, `DPM++ 2S a Karras`, `DPM++ 2M Karras`, `DPM++ SDE Karras`, `DDIM`, `PLMS`, `UniPC`',
        ],
    ),
    (
        "type-enum",
        {"m/lm.yaml": MODEL.replace("spec:\n", "spec:\n  type: subjct\n")},
        [
            'm/lm.yaml:6:9: LoraModel/lm: spec.type: expected `subject` or `style`; got "subjct"',
        ],
    ),
    (
        "width-zero-height-string",
        {"m/lm.yaml": MODEL + "  width: 0\n  height: '512'\n"},
        [
            "m/lm.yaml:11:10: LoraModel/lm: spec.width: must be ≥ 1; got 0",
            'm/lm.yaml:12:11: LoraModel/lm: spec.height: expected an integer; got "512"',
        ],
    ),
    (
        "class-prompt-enum",
        {"m/lm.yaml": MODEL.replace("class_prompt: person", "class_prompt: man")},
        [
            'm/lm.yaml:10:19: LoraModel/lm: spec.expert_setting.class_prompt: expected `person`; got "man"',
        ],
    ),
    (
        "subject-missing-instance-prompt",
        {"m/lm.yaml": MODEL.replace("    instance_prompt: a photo of ohwx man\n", "")},
        [
            "m/lm.yaml:8:3: LoraModel/lm: spec.expert_setting.instance_prompt: required for subject training",
        ],
    ),
    (
        "required-dataset-and-base-model-missing",
        {"m/lm.yaml": MODEL.replace("  dataset: ds\n  base_model: v1-5-pruned-emaonly\n", "")},
        [
            "m/lm.yaml:5:1: LoraModel/lm: spec.base_model: required field missing",
            "m/lm.yaml:5:1: LoraModel/lm: spec.dataset: required field missing",
        ],
    ),
    (
        "lr-scheduler-enum",
        {"m/lm.yaml": MODEL + "    lr_scheduler: cosine_restarts\n"},
        [
            'm/lm.yaml:11:19: LoraModel/lm: spec.expert_setting.lr_scheduler: expected `constant`, `linear`, `cosine`, `cosine_with_restarts`, `polynomial` or `constant_with_warmup`; got "cosine_restarts"',
        ],
    ),
    (
        "train-batch-size-low",
        {"m/lm.yaml": MODEL + "    train_batch_size: 0\n"},
        [
            "m/lm.yaml:11:23: LoraModel/lm: spec.expert_setting.train_batch_size: must be between 1 and 4; got 0",
        ],
    ),
    (
        "train-batch-size-high",
        {"m/lm.yaml": MODEL + "    train_batch_size: 5\n"},
        [
            "m/lm.yaml:11:23: LoraModel/lm: spec.expert_setting.train_batch_size: must be between 1 and 4; got 5",
        ],
    ),
    (
        "lora-ranks-both-sides",
        {"m/lm.yaml": MODEL + "    lora_r: 3\n    lora_alpha: 129\n    lora_text_encoder_r: 4\n"},
        [
            "m/lm.yaml:11:13: LoraModel/lm: spec.expert_setting.lora_r: must be between 4 and 128; got 3",
            "m/lm.yaml:12:17: LoraModel/lm: spec.expert_setting.lora_alpha: must be between 4 and 128; got 129",
        ],
    ),
    (
        "learning-rate-not-a-number",
        {"m/lm.yaml": MODEL + "    learning_rate: fast\n"},
        [
            'm/lm.yaml:11:20: LoraModel/lm: spec.expert_setting.learning_rate: expected a number like 1e-4; got "fast"',
        ],
    ),
    (
        "learning-rate-out-of-range",
        {"m/lm.yaml": MODEL + "    learning_rate: 2\n"},
        [
            "m/lm.yaml:11:20: LoraModel/lm: spec.expert_setting.learning_rate: must be > 0 and ≤ 1; got 2",
        ],
    ),
    (
        "learning-rate-zero",
        {"m/lm.yaml": MODEL + "    learning_rate: 0\n"},
        [
            "m/lm.yaml:11:20: LoraModel/lm: spec.expert_setting.learning_rate: must be > 0 and ≤ 1; got 0",
        ],
    ),
    (
        "steps-seed-warmup-lower-bounds",
        {"m/lm.yaml": MODEL + "    max_train_steps: 0\n    seed: 0\n    lr_warmup_steps: -1\n"},
        [
            "m/lm.yaml:11:22: LoraModel/lm: spec.expert_setting.max_train_steps: must be ≥ 1; got 0",
            "m/lm.yaml:12:11: LoraModel/lm: spec.expert_setting.seed: must be ≥ 1; got 0",
            "m/lm.yaml:13:22: LoraModel/lm: spec.expert_setting.lr_warmup_steps: must be ≥ 0; got -1",
        ],
    ),
    (
        "bool-field-wrong-type",
        {"m/lm.yaml": MODEL + "    train_text_encoder: maybe\n"},
        [
            'm/lm.yaml:11:25: LoraModel/lm: spec.expert_setting.train_text_encoder: expected true or false; got "maybe"',
        ],
    ),
    (
        "expert-setting-is-a-list",
        {"m/lm.yaml": MODEL.split("  expert_setting:")[0] + "  expert_setting: [a, b]\n"},
        [
            "m/lm.yaml:8:19: LoraModel/lm: spec.expert_setting: expected a mapping; got a list",
        ],
    ),
    (
        "style-with-subject-only-fields",
        {
            "m/lm.yaml": STYLE + "  expert_setting:\n    instance_prompt: x\n    prior_loss_weight: 1.0\n",
            "img/a.txt": "a",
            "img/b.txt": "b",
            "img/c.txt": "c",
        },
        [
            "m/lm.yaml:10:5: LoraModel/lm: spec.expert_setting.instance_prompt: only for subject training (this model is style)",
            "m/lm.yaml:11:5: LoraModel/lm: spec.expert_setting.prior_loss_weight: only for subject training (this model is style)",
        ],
    ),
    (
        "component-unknown-name",
        {"m/lm.yaml": MODEL + "  components:\n    - {name: face_crop, args: {ratio: 1.4}}\n"},
        [
            'm/lm.yaml:12:14: LoraModel/lm: spec.components[0].name: expected `face_crop_region`, `resize` or `face_restore`; got "face_crop"',
        ],
    ),
    (
        "component-unknown-arg",
        {"m/lm.yaml": MODEL + "  components:\n    - {name: face_crop_region, args: {ration: 1.4}}\n"},
        [
            "m/lm.yaml:12:39: LoraModel/lm: spec.components[0].args.ration: unknown arg of face_crop_region; did you mean `ratio`?",
        ],
    ),
    (
        "component-arg-values",
        {
            "m/lm.yaml": MODEL
            + "  components:\n    - {name: resize, args: {width: 0, height: big}}\n"
            + "    - {name: face_restore, args: {method: gfpgan_1.4, upscale: -1, extra: [1]}}\n"
        },
        [
            "m/lm.yaml:12:36: LoraModel/lm: spec.components[0].args.width: must be ≥ 1; got 0",
            'm/lm.yaml:12:47: LoraModel/lm: spec.components[0].args.height: expected an integer; got "big"',
            "m/lm.yaml:13:75: LoraModel/lm: spec.components[1].args.extra: expected a string, number or boolean; got a list",
        ],
    ),
    (
        "dataset-reference-dangling",
        {"m/lm.yaml": MODEL.replace("dataset: ds", "dataset: dss")},
        [
            'm/lm.yaml:6:12: LoraModel/lm: spec.dataset: no Dataset named "dss"; did you mean `ds`?',
        ],
    ),
    # -- Generation -----------------------------------------------------------------------------------
    (
        "generation-required-missing",
        {"m/gen.yaml": GENERATION.replace("  model_name: m.safetensors\n", "").replace("  output: ../out/gen\n", "")},
        [
            "m/gen.yaml:5:1: Generation/gen: spec.model_name: required field missing",
            "m/gen.yaml:5:1: Generation/gen: spec.output: required field missing",
        ],
    ),
    (
        "prompt-empty-negative-too-long",
        {"m/gen.yaml": GENERATION.replace("prompt: hello", "prompt: ''") + "  negative_prompt: " + "n" * 1025 + "\n"},
        [
            "m/gen.yaml:7:11: Generation/gen: spec.prompt: must not be empty",
            "m/gen.yaml:9:20: Generation/gen: spec.negative_prompt: must be 1 to 1024 characters long; got 1025",
        ],
    ),
    (
        "size-bounds-both-sides",
        {"m/gen.yaml": GENERATION + "  width: 127\n  height: 2049\n"},
        [
            "m/gen.yaml:9:10: Generation/gen: spec.width: must be between 128 and 2048; got 127",
            "m/gen.yaml:10:11: Generation/gen: spec.height: must be between 128 and 2048; got 2049",
        ],
    ),
    (
        "image-num-steps-low",
        {"m/gen.yaml": GENERATION + "  image_num: 0\n  steps: 0\n"},
        [
            "m/gen.yaml:9:14: Generation/gen: spec.image_num: must be between 1 and 8; got 0",
            "m/gen.yaml:10:10: Generation/gen: spec.steps: must be between 1 and 100; got 0",
        ],
    ),
    (
        "image-num-steps-high",
        {"m/gen.yaml": GENERATION + "  image_num: 9\n  steps: 101\n"},
        [
            "m/gen.yaml:9:14: Generation/gen: spec.image_num: must be between 1 and 8; got 9",
            "m/gen.yaml:10:10: Generation/gen: spec.steps: must be between 1 and 100; got 101",
        ],
    ),
    (
        "seed-below-minus-one",
        {"m/gen.yaml": GENERATION + "  seed: -2\n"},
        [
            "m/gen.yaml:9:9: Generation/gen: spec.seed: must be ≥ -1; got -2",
        ],
    ),
    (
        "guidance-scale-both-sides",
        {
            "m/gen.yaml": GENERATION + "  guidance_scale: 0.5\n",
            "m/gen2.yaml": GENERATION.replace("name: gen", "name: gen2") + "  guidance_scale: 31\n",
        },
        [
            "m/gen.yaml:9:19: Generation/gen: spec.guidance_scale: must be between 1 and 30; got 0.5",
            "m/gen2.yaml:9:19: Generation/gen2: spec.guidance_scale: must be between 1 and 30; got 31",
        ],
    ),
    (
        "sampler-enum-nearest",
        {"m/gen.yaml": GENERATION + "  sampler_name: euler a\n"},
        [
            'm/gen.yaml:9:17: Generation/gen: spec.sampler_name: "euler a" is not one of the 20 allowed values; nearest: `Euler a`, `Euler` (all: `reconciler models`)',
        ],
    ),
    (
        "clip-skip-both-sides",
        {
            "m/gen.yaml": GENERATION + "  clip_skip: 0\n",
            "m/gen2.yaml": GENERATION.replace("name: gen", "name: gen2") + "  clip_skip: 13\n",
        },
        [
            "m/gen.yaml:9:14: Generation/gen: spec.clip_skip: must be between 1 and 12; got 0",
            "m/gen2.yaml:9:14: Generation/gen2: spec.clip_skip: must be between 1 and 12; got 13",
        ],
    ),
    (
        "response-image-type-enum",
        {"m/gen.yaml": GENERATION + "  response_image_type: gif\n"},
        [
            'm/gen.yaml:9:24: Generation/gen: spec.response_image_type: expected `png`, `webp` or `jpeg`; got "gif"',
        ],
    ),
    (
        "six-loras",
        {"m/gen.yaml": GENERATION + "  loras:\n" + "    - {model_name: x.safetensors}\n" * 6},
        [
            "m/gen.yaml:9:3: Generation/gen: spec.loras: at most 5 items; got 6",
        ],
    ),
    (
        "lora-strength-both-sides",
        {"m/gen.yaml": GENERATION + "  loras:\n    - {model: lm, strength: 1.5}\n    - {model: lm, strength: -0.1}\n"},
        [
            "m/gen.yaml:10:29: Generation/gen: spec.loras[0].strength: must be between 0 and 1; got 1.5",
            "m/gen.yaml:11:29: Generation/gen: spec.loras[1].strength: must be between 0 and 1; got -0.1",
        ],
    ),
    (
        "lora-model-and-model-name",
        {"m/gen.yaml": GENERATION + "  loras:\n    - {model: lm, model_name: x.safetensors}\n    - {strength: 0.5}\n"},
        [
            "m/gen.yaml:10:19: Generation/gen: spec.loras[0].model_name: give either `model` or `model_name`, not both",
            "m/gen.yaml:11:7: Generation/gen: spec.loras[1]: give `model` (a LoraModel of these manifests) or `model_name` (a Novita LoRA)",
        ],
    ),
    (
        "lora-model-dangling",
        {"m/gen.yaml": GENERATION + "  loras:\n    - {model: lm2}\n"},
        [
            'm/gen.yaml:10:15: Generation/gen: spec.loras[0].model: no LoraModel named "lm2"; did you mean `lm`?',
        ],
    ),
    (
        "lora-model-name-is-our-lora-model",
        {
            "m/gen.yaml": GENERATION
            + "  loras:\n    - {model_name: lm}\n    - {model_name: lm.safetensors, strength: 0.5}\n"
        },
        [
            'm/gen.yaml:10:8: Generation/gen: spec.loras[0].model_name: "lm" is the LoraModel lm of these manifests, not a Novita file name; did you mean `model: lm`?',
            'm/gen.yaml:11:8: Generation/gen: spec.loras[1].model_name: "lm.safetensors" is the LoraModel lm of these manifests, not a Novita file name; did you mean `model: lm`?',
        ],
    ),
    (
        "lora-model-name-not-a-file-name",
        {
            "m/gen.yaml": GENERATION
            + "  loras:\n    - {model_name: me-v2}\n    - {model_name: LoraModel/me-v2}\n    - {model_name: loras/x.safetensors}\n"
        },
        [
            'm/gen.yaml:10:20: Generation/gen: spec.loras[0].model_name: "me-v2" is not a Novita LoRA file name (<name>.safetensors as Novita lists it, or a trained model_<digits>_<id>); a LoraModel of these manifests goes under `model:`',
            'm/gen.yaml:11:20: Generation/gen: spec.loras[1].model_name: "LoraModel/me-v2" is an address, not a file name; did you mean `model: me-v2`?',
            'm/gen.yaml:12:20: Generation/gen: spec.loras[2].model_name: "loras/x.safetensors" is a path; Novita names a LoRA by its file name alone',
        ],
    ),
    (
        "six-embeddings",
        {"m/gen.yaml": GENERATION + "  embeddings:\n" + "    - {model_name: e}\n" * 6},
        [
            "m/gen.yaml:9:3: Generation/gen: spec.embeddings: at most 5 items; got 6",
        ],
    ),
    (
        "img2img-without-init-image",
        {"m/gen.yaml": IMG2IMG},
        [
            "m/gen.yaml:6:9: Generation/gen: spec.type: img2img needs `init_image` (a png, jpeg or webp file)",
        ],
    ),
    (
        "txt2img-with-init-image-and-strength",
        {"m/gen.yaml": GENERATION + "  init_image: ../img/a.jpg\n  strength: 0.5\n"},
        [
            "m/gen.yaml:9:3: Generation/gen: spec.init_image: only for img2img (this generation is txt2img)",
            "m/gen.yaml:10:3: Generation/gen: spec.strength: only for img2img (this generation is txt2img)",
        ],
    ),
    (
        "img2img-with-hires-fix-and-refiner",
        {
            "m/gen.yaml": IMG2IMG
            + "  init_image: ../img/a.jpg\n  hires_fix: {target_width: 1024, target_height: 1024}\n"
            + "  refiner: {switch_at: 0.5}\n"
        },
        [
            "m/gen.yaml:11:3: Generation/gen: spec.hires_fix: only for txt2img (this generation is img2img)",
            "m/gen.yaml:12:3: Generation/gen: spec.refiner: only for txt2img (this generation is img2img)",
        ],
    ),
    (
        "hires-fix-bounds-and-upscaler",
        {"m/gen.yaml": GENERATION + "  hires_fix: {target_width: 127, target_height: 4097, upscaler: ESRGAN}\n"},
        [
            "m/gen.yaml:9:29: Generation/gen: spec.hires_fix.target_width: must be between 128 and 4096; got 127",
            "m/gen.yaml:9:49: Generation/gen: spec.hires_fix.target_height: must be between 128 and 4096; got 4097",
            'm/gen.yaml:9:65: Generation/gen: spec.hires_fix.upscaler: expected `RealESRGAN_x4plus_anime_6B`, `RealESRNet_x4plus` or `Latent`; got "ESRGAN"',
        ],
    ),
    (
        "refiner-switch-at-high",
        {"m/gen.yaml": GENERATION + "  refiner: {switch_at: 1.5}\n"},
        [
            "m/gen.yaml:9:24: Generation/gen: spec.refiner.switch_at: must be between 0 and 1; got 1.5",
        ],
    ),
    (
        "img2img-strength-low",
        {"m/gen.yaml": IMG2IMG + "  init_image: ../img/a.jpg\n  strength: -0.5\n"},
        [
            "m/gen.yaml:11:13: Generation/gen: spec.strength: must be between 0 and 1; got -0.5",
        ],
    ),
    (
        "init-image-not-an-image",
        {"img/notes.jpeg": b"hello", "m/gen.yaml": IMG2IMG + "  init_image: ../img/notes.jpeg\n"},
        [
            "m/gen.yaml:10:15: Generation/gen: spec.init_image: img/notes.jpeg is not a png, jpeg or webp image (checked by its content, not its name)",
        ],
    ),
    (
        "init-image-too-many-pixels",
        {"img/huge.png": _png_header(5000, 4000), "m/gen.yaml": IMG2IMG + "  init_image: ../img/huge.png\n"},
        [
            "m/gen.yaml:10:15: Generation/gen: spec.init_image: img/huge.png is 5000×4000 (20.0 megapixels); Novita accepts at most 16 megapixels",
        ],
    ),
    (
        "output-outside-project",
        {"m/gen.yaml": GENERATION.replace("../out/gen", "../../elsewhere")},
        [
            "m/gen.yaml:8:11: Generation/gen: spec.output: `../../elsewhere` resolves to <PARENT>/elsewhere, outside the project folder <ROOT>",
        ],
    ),
    (
        "output-is-a-file",
        {"out/gen": "a file\n"},
        [
            "m/gen.yaml:8:11: Generation/gen: spec.output: `../out/gen` exists and is not a folder",
        ],
    ),
    # -- several problems in several files, reported at once and sorted ---------------------------------
    (
        "several-files-several-problems",
        {
            "m/ds.yaml": DATASET + "    - ../img/missing.jpg\n",
            "m/lm.yaml": MODEL.replace("dataset: ds", "dataset: nope") + "  width: -1\n",
            "m/gen.yaml": GENERATION + "  steps: 500\n  sampler: Euler\n",
        },
        [
            "m/ds.yaml:8:7: Dataset/ds: spec.images[1]: `../img/missing.jpg`: no such file or folder (img/missing.jpg)",
            "m/gen.yaml:9:10: Generation/gen: spec.steps: must be between 1 and 100; got 500",
            "m/gen.yaml:10:3: Generation/gen: spec.sampler: unknown field; did you mean `sampler_name`?",
            'm/lm.yaml:6:12: LoraModel/lm: spec.dataset: no Dataset named "nope" (the Datasets are `ds`)',
            "m/lm.yaml:11:10: LoraModel/lm: spec.width: must be ≥ 1; got -1",
        ],
    ),
]


def problems_of(root: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifests([Path("m")], root)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid(tmp_path: Path, files: dict[str, str | bytes | None], expected: list[str]) -> None:
    project(tmp_path, files)
    placed = [e.replace("<ROOT>", str(tmp_path)).replace("<PARENT>", str(tmp_path.parent)) for e in expected]
    assert problems_of(tmp_path) == placed


def test_symlink_escaping_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(image_bytes())
    root = tmp_path / "project"
    project(root, {"m/ds.yaml": DATASET + "    - ../img/link.jpg\n"})
    (root / "img" / "link.jpg").symlink_to(outside / "secret.jpg")
    escape = f"`../img/link.jpg` resolves through a symlink to {outside}/secret.jpg, outside the project folder {root}"
    assert problems_of(root) == [
        f"m/ds.yaml:7:7: Dataset/ds: spec.images[0]: {escape}",  # found by the glob
        f"m/ds.yaml:8:7: Dataset/ds: spec.images[1]: {escape}",  # named explicitly
    ]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 45

"""The peer of a first apply: a straightforward threaded script on the official SDK (`novita-client`).

It does the same work as `reconciler apply` on a synthetic project (bench/synth.py): for every LoraModel, upload
its dataset's images and create its training (`create_training_subject` does both), poll the training every
second until its model serves, then run the model's txt2img generations (the SDK polls them, here every
second too) and write their images into each generation's output folder. One thread per model, and one per
generation of it. It reads the manifests with plain PyYAML, shares no code with reconciler, and keeps no
state: it is what a person would write without a tool.

    NOVITA_API_BASE=http://127.0.0.1:PORT NOVITA_API_KEY=any python bench/sdk_peer.py PROJECT_ROOT
"""

from __future__ import annotations

import base64
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import novita_client
import yaml

POLL = 1.0


def documents(root: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((root / "manifests").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def images_of(root: Path, dataset: dict[str, Any]) -> list[Path]:
    folder = root / "manifests" / "models"  # the synthetic project's globs are relative to this folder
    found: list[Path] = []
    for pattern in dataset["spec"]["images"]:
        found += sorted(folder.glob(pattern))
    return [p.resolve() for p in found]


def train(client: Any, root: Path, model: dict[str, Any], dataset: dict[str, Any]) -> str:
    spec = model["spec"]
    expert = spec.get("expert_setting", {})
    task_id = client.create_training_subject(
        name=model["metadata"]["name"],
        base_model=spec["base_model"],
        images=[str(p) for p in images_of(root, dataset)],
        instance_prompt=expert["instance_prompt"],
        class_prompt=expert["class_prompt"],
        width=spec.get("width", 512),
        height=spec.get("height", 512),
        learning_rate=str(expert.get("learning_rate", "1e-4")),
        max_train_steps=str(expert.get("max_train_steps", 500)),
        components=novita_client.FACE_TRAINING_DEFAULT_COMPONENTS,
    )
    while True:
        status = client.query_training_subject_status(task_id)
        if status.task_status == "SUCCESS" and status.models and status.models[0].model_status == "SERVING":
            return str(status.models[0].model_name)
        if status.task_status in ("FAILED", "CANCELED"):
            raise RuntimeError(f"training {task_id} {status.task_status}")
        time.sleep(POLL)


def generate(client: Any, root: Path, generation: dict[str, Any], lora: str) -> int:
    spec = generation["spec"]
    result = client.txt2img_v3(
        model_name=spec["model_name"],
        prompt=spec["prompt"],
        image_num=spec.get("image_num", 1),
        width=spec.get("width"),
        height=spec.get("height"),
        steps=spec.get("steps"),
        seed=spec.get("seed"),
        loras=[novita_client.Txt2ImgV3LoRA(model_name=lora, strength=spec["loras"][0]["strength"])],
        response_image_type=spec.get("response_image_type", "png"),
        download_images=True,
    )
    out = (root / "manifests" / spec["output"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for index, encoded in enumerate(result.images_encoded):
        (out / f"{generation['metadata']['name']}-{index}.jpg").write_bytes(base64.b64decode(encoded))
    return len(result.images_encoded)


def main() -> None:
    root = Path(sys.argv[1])
    novita_client.settings.DEFAULT_POLL_INTERVAL = POLL
    client = novita_client.NovitaClient(os.environ["NOVITA_API_KEY"], base_url=os.environ["NOVITA_API_BASE"])
    docs = documents(root)
    datasets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Dataset"}
    models = [d for d in docs if d["kind"] == "LoraModel"]
    generations = [d for d in docs if d["kind"] == "Generation"]

    def one_model(model: dict[str, Any]) -> int:
        lora = train(client, root, model, datasets[model["spec"]["dataset"]])
        mine = [g for g in generations if g["spec"]["loras"][0]["model"] == model["metadata"]["name"]]
        with ThreadPoolExecutor(max(1, len(mine))) as pool:
            return sum(pool.map(lambda g: generate(client, root, g, lora), mine))

    with ThreadPoolExecutor(len(models)) as pool:
        images = sum(pool.map(one_model, models))
    print(f"{len(models)} trainings, {images} images")


if __name__ == "__main__":
    main()

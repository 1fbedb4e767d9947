"""Plain objects for planner tests: desired resources, state entries and remote tasks, no I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.desired.resources import Desired, DesiredDataset, DesiredGeneration, DesiredImage, DesiredModel
from reconciler.observe.facts import Account, AccountTraining, OutputFacts
from reconciler.state import DatasetEntry, FileRecord, GenerationEntry, ImageRecord, ModelEntry, ResourceEntry, State
from reconciler.status import Status


def image(n: int, caption: str | None = None) -> DesiredImage:
    return DesiredImage(f"{n:064x}", Path(f"/p/img{n}.jpg"), f"img{n}.jpg", caption, "jpeg")


def dataset(name: str = "photos", images: int = 3) -> DesiredDataset:
    return DesiredDataset(name, tuple(image(i) for i in range(images)), "m.yaml:1")


def model(name: str = "alice", ds: DesiredDataset | None = None, steps: int = 500) -> DesiredModel:
    ds = ds or dataset()
    settings: dict[str, Any] = {
        "base_model": "v1-5-pruned-emaonly",
        "width": 512,
        "height": 512,
        "expert_setting": {"instance_prompt": "ohwx", "class_prompt": "person", "max_train_steps": steps},
        "components": [],
    }
    return DesiredModel(name, "subject", ds.name, ds.images, settings, "m.yaml:5")


def generation(
    name: str = "portraits", loras: tuple[str, ...] = ("alice",), prompt: str = "a photo"
) -> DesiredGeneration:
    request: dict[str, Any] = {
        "model_name": "realisticVisionV51_v51VAE_94301.safetensors",
        "prompt": prompt,
        "width": 512,
        "height": 384,
        "image_num": 2,
        "steps": 20,
        "seed": 123,
        "guidance_scale": 7.5,
        "sampler_name": "Euler a",
    }
    if loras:
        request["loras"] = [{"model": m, "strength": 0.7} for m in loras]
    return DesiredGeneration(
        name,
        "txt2img",
        request,
        {"response_image_type": "png"},
        None,
        Path("/p/out") / name,
        f"out/{name}",
        "m.yaml:9",
    )


def desired(*items: Any) -> Desired:
    datasets = {i.name: i for i in items if isinstance(i, DesiredDataset)}
    models = {i.name: i for i in items if isinstance(i, DesiredModel)}
    gens = {i.name: i for i in items if isinstance(i, DesiredGeneration)}
    return Desired(datasets, models, gens, "digest")


def trained_name(m: DesiredModel) -> str:
    return f"model_1700000000_{m.identity[:10].upper()}.safetensors"


def dataset_entry(ds: DesiredDataset) -> DatasetEntry:
    return DatasetEntry.of(ds)


def model_entry(m: DesiredModel, status: str = "succeeded", task_id: str = "t-1", **kw: Any) -> ModelEntry:
    entry = ModelEntry.of(
        m, Status(status), task_id=task_id, model_name=trained_name(m) if status == "succeeded" else None
    )
    return entry.model_copy(update=kw)


def generation_entry(
    g: DesiredGeneration, names: dict[str, str | None], status: str = "succeeded", **kw: Any
) -> GenerationEntry:
    identity = g.identity(names)
    assert identity is not None
    return GenerationEntry.of(
        g,
        identity,
        names,
        Status(status),
        files=[FileRecord(path=f"{g.output_display}/{g.name}-{i}.png", sha256=f"{i:064x}") for i in range(g.image_num)],
        task_id=kw.pop("task_id", "g-1"),
        **kw,
    )


def state(*entries: ResourceEntry, uploaded: tuple[str, ...] = ()) -> State:
    s = State(lineage="00000000-0000-0000-0000-000000000000", serial=7)
    for e in entries:
        s.resources[f"{e.kind}/{e.name}"] = e
    for h in uploaded:
        s.images[h] = ImageRecord(assets_id=f"a-{h[-4:]}", format="jpeg")
    return s


def remote_task(
    m: DesiredModel,
    status: str = "SUCCESS",
    task_id: str = "t-1",
    model_status: str | None = "SERVING",
    created_at: int = 1700000000,
    name: str | None = None,
) -> AccountTraining:
    return AccountTraining(
        task_id=task_id,
        task_name=name or m.task_name,
        task_type=m.task_type,
        status=status,
        created_at=created_at,
        model_name=trained_name(m) if status == "SUCCESS" else None,
        model_status=model_status if status == "SUCCESS" else None,
    )


def remote(*tasks: AccountTraining, foreign: int = 0, generations: dict[str, Any] | None = None) -> Account:
    others = tuple(
        AccountTraining(
            task_id=f"f-{i}",
            task_name=f"other-team-{i}",
            task_type="style",
            status="SUCCESS",
            model_name=f"model_1_{i:010X}.safetensors",
            model_status="SERVING",
        )
        for i in range(foreign)
    )
    return Account(trainings=tasks + others, generations=generations or {}, pages=1 + (len(tasks) + foreign) // 100)


INTACT = OutputFacts(files_intact=True)

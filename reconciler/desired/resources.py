"""From loaded manifests to the desired world: content hashes, identities, request bodies, order.

Pure but for reading image bytes through the HashCache. A model's identity is the hash of everything that
shapes its training (type, base model, size, expert settings, components, and its dataset's image hashes
and captions in order); its Novita task is named `<name>-<first 8 hex>`. A generation's identity is the
hash of its request with every LoRA reference resolved to a trained model name, and of its init image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.desired.hashing import HashCache
from reconciler.files import display_path
from reconciler.load.matrix import matrix_of, normalise_address
from reconciler.status import OnUnanswered as Choice

if TYPE_CHECKING:
    from reconciler.load import Generation, ImageFile, LoraModel, ManifestSet

KIND_ORDER = {"Dataset": 0, "LoraModel": 1, "Generation": 2}
KNOWN_AFTER_APPLY = "(known after apply)"


def canonical_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def generation_identity(task_type: str, request: dict[str, Any], extra: dict[str, Any], init_image: str | None) -> str:
    """A generation's identity: its type, its request with LoRAs resolved to trained model names, its `extra`, and
    its init image's hash (recomputed from a sidecar to check the identity it claims)."""
    return canonical_hash(generation_fields(task_type, request, extra, init_image))


def generation_fields(
    task_type: str, request: dict[str, Any], extra: dict[str, Any], init_image: str | None
) -> dict[str, Any]:
    """What a generation's identity is the hash of (`explain` shows it)."""
    return {"type": task_type, "request": request, "extra": extra, "init_image": init_image}


def address(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def sort_key(addr: str) -> tuple[int, str]:
    kind, _, name = addr.partition("/")
    return KIND_ORDER.get(kind, 9), name


def matrix_address(addr: str) -> str | None:
    """`Generation/alice-grid` for the member `Generation/alice-grid[seed=1]`; None for a plain resource."""
    kind, _, name = addr.partition("/")
    base = matrix_of(name)
    return f"{kind}/{base}" if base is not None else None


@dataclass(frozen=True, slots=True)  # one per photo: no __dict__ each
class DesiredImage:
    sha256: str
    path: Path
    display: str
    caption: str | None
    format: str

    def as_attribute(self) -> dict[str, Any]:
        return {"file": self.display, "sha256": self.sha256, "caption": self.caption}


@dataclass(frozen=True)
class DesiredDataset:
    name: str
    images: tuple[DesiredImage, ...]
    source: str

    @property
    def address(self) -> str:
        return address("Dataset", self.name)

    @property
    def identity(self) -> str:
        return canonical_hash([[i.sha256, i.caption] for i in self.images])

    def attributes(self) -> dict[str, Any]:
        return {"images": [i.as_attribute() for i in self.images]}


@dataclass(frozen=True)
class DesiredModel:
    name: str
    task_type: str  # subject | style
    dataset: str
    images: tuple[DesiredImage, ...]
    settings: dict[str, Any]  # base_model, width, height, expert_setting, components (manifest values)
    source: str
    matrix: str | None = None  # a matrix member: the matrix's name (its task is named after it)
    axes: tuple[tuple[str, Any], ...] = ()  # a member's (label, value)
    identity: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", canonical_hash(self.identity_fields()))

    def identity_fields(self) -> dict[str, Any]:
        """Everything that shapes its training: what its identity is the hash of (`explain` shows it)."""
        return {"type": self.task_type, **self.settings, "images": [[i.sha256, i.caption] for i in self.images]}

    @property
    def address(self) -> str:
        return address("LoraModel", self.name)

    @property
    def task_name(self) -> str:
        """`<name>-<8 hex>`; a matrix member is named after its matrix (its identity tells it apart)."""
        return f"{self.matrix or self.name}-{self.identity[:8]}"

    def attributes(self) -> dict[str, Any]:
        return {
            "type": self.task_type,
            "dataset": self.dataset,
            **self.settings,
            "images": [i.as_attribute() for i in self.images],
        }

    def training_body(self, assets: dict[str, str]) -> dict[str, Any]:
        """The POST /v3/training/<type> body, given the assets_id of every image hash."""
        items: list[dict[str, Any]] = []
        for image in self.images:
            item: dict[str, Any] = {"assets_id": assets[image.sha256]}
            if image.caption:
                item["caption"] = image.caption
            items.append(item)
        body: dict[str, Any] = {
            "name": self.task_name,
            "base_model": self.settings["base_model"],
            "width": self.settings["width"],
            "height": self.settings["height"],
            "image_dataset_items": items,
        }
        if self.settings["expert_setting"]:
            body["expert_setting"] = dict(self.settings["expert_setting"])
        if self.settings["components"]:
            body["components"] = [
                {"name": c["name"], "args": [{"name": k, "value": _arg_str(v)} for k, v in c["args"].items()]}
                for c in self.settings["components"]
            ]
        return body


def _arg_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class DesiredGeneration:
    name: str
    task_type: str  # txt2img | img2img
    request: dict[str, Any]  # Novita's request fields; loras as {"model": ours} or {"model_name": theirs}
    extra: dict[str, Any]
    init_image: DesiredImage | None
    output_dir: Path
    output_display: str
    source: str
    matrix: str | None = None  # a matrix member: the matrix's name
    axes: tuple[tuple[str, Any], ...] = ()  # a member's (label, value), swept models' included
    on_unanswered_submit: Choice | None = None  # spec.on_unanswered_submit: not sent, not in the identity

    @property
    def address(self) -> str:
        return address("Generation", self.name)

    @property
    def stem(self) -> str:
        """What its files are named after: the generation's (or its matrix's) name."""
        return self.matrix or self.name

    @property
    def lora_models(self) -> tuple[str, ...]:
        """Our LoraModels this generation uses, in order, without repeats."""
        names = [lora["model"] for lora in self.request.get("loras", []) if "model" in lora]
        return tuple(dict.fromkeys(names))

    @property
    def image_num(self) -> int:
        return int(self.request.get("image_num", 1))

    @property
    def image_type(self) -> str:
        return str(self.extra.get("response_image_type", "png"))

    def resolved_request(self, model_names: dict[str, str | None]) -> dict[str, Any]:
        """The request with our LoRA references replaced by trained model names (or KNOWN_AFTER_APPLY)."""
        request = dict(self.request)
        if "loras" in request:
            request["loras"] = [
                {
                    "model_name": model_names.get(lora["model"]) or KNOWN_AFTER_APPLY,
                    "strength": lora["strength"],
                }
                if "model" in lora
                else dict(lora)
                for lora in request["loras"]
            ]
        return request

    def identity(self, model_names: dict[str, str | None]) -> str | None:
        """The identity hash, or None while a LoRA it uses has no trained model name yet."""
        if any(not model_names.get(m) for m in self.lora_models):
            return None
        init_image = self.init_image.sha256 if self.init_image else None
        return generation_identity(self.task_type, self.resolved_request(model_names), self.extra, init_image)

    def recorded_request(self, model_names: dict[str, str | None]) -> dict[str, Any]:
        """The request as the state and the sidecar record it (an init image as its hash): what a sidecar's
        identity is recomputed from."""
        request = self.resolved_request(model_names)
        if self.init_image is not None:
            request["init_image_sha256"] = self.init_image.sha256
        return {"extra": self.extra, "request": request}

    def identity_fields(self, model_names: dict[str, str | None]) -> dict[str, Any]:
        """What was asked of Novita, its identity's input (`explain`); an untrained LoRA of ours reads
        `(known after apply)`."""
        init_image = self.init_image.sha256 if self.init_image else None
        return generation_fields(self.task_type, self.resolved_request(model_names), self.extra, init_image)

    def attributes(self, model_names: dict[str, str | None]) -> dict[str, Any]:
        attrs: dict[str, Any] = {"type": self.task_type, **self.resolved_request(model_names), **self.extra}
        for lora, original in zip(attrs.get("loras", []), self.request.get("loras", []), strict=True):
            if "model" in original:
                lora["model"] = original["model"]
        if self.init_image is not None:
            attrs["init_image"] = self.init_image.as_attribute()
        attrs["output"] = self.output_display
        return attrs

    def body(self, model_names: dict[str, str], init_image_b64: str | None) -> dict[str, Any]:
        """The POST /v3/async/<type> body."""
        request = self.resolved_request(dict(model_names))
        if init_image_b64 is not None:
            request["image_base64"] = init_image_b64
        return {"extra": dict(self.extra), "request": request}


@dataclass(frozen=True)
class Desired:
    datasets: dict[str, DesiredDataset]
    models: dict[str, DesiredModel]
    generations: dict[str, DesiredGeneration]
    manifest_digest: str

    def has(self, addr: str) -> bool:
        """A resource of the manifests at this address."""
        kind, _, name = addr.partition("/")
        if kind == "Dataset":
            return name in self.datasets
        if kind == "LoraModel":
            return name in self.models
        return kind == "Generation" and name in self.generations

    def addresses(self) -> list[str]:
        found = [d.address for d in self.datasets.values()]
        found += [m.address for m in self.models.values()]
        found += [g.address for g in self.generations.values()]
        return sorted(found, key=sort_key)

    def matrices(self) -> dict[str, list[str]]:
        """Each matrix's address → its members' addresses, sorted."""
        found: dict[str, list[str]] = {}
        for addr in self.addresses():
            base = matrix_address(addr)
            if base is not None:
                found.setdefault(base, []).append(addr)
        return found

    def expand(self, targets: list[str]) -> list[str]:
        """Addresses as given on the command line → resource addresses: a matrix stands for its members, and
        a member's axes may be written in any order."""
        matrices = self.matrices()
        out: list[str] = []
        for target in targets:
            target = normalise_address(target)
            out.extend(matrices.get(target, [target]))
        return list(dict.fromkeys(out))

    def digest(self) -> str:
        """Changes whenever anything desired changes: manifests and image bytes alike."""
        return canonical_hash(
            {
                "manifests": self.manifest_digest,
                "datasets": {n: d.identity for n, d in self.datasets.items()},
                "models": {n: m.identity for n, m in self.models.items()},
                "init_images": {
                    n: g.init_image.sha256 for n, g in self.generations.items() if g.init_image is not None
                },
            }
        )

    def dependencies(self, addr: str) -> list[str]:
        """Addresses this resource needs, directly."""
        kind, _, name = addr.partition("/")
        if kind == "LoraModel":
            return [address("Dataset", self.models[name].dataset)]
        if kind == "Generation":
            return [address("LoraModel", m) for m in self.generations[name].lora_models]
        return []

    def closure(self, targets: list[str]) -> set[str]:
        """The targets and everything they depend on, transitively."""
        seen: set[str] = set()
        todo = list(targets)
        while todo:
            addr = todo.pop()
            if addr in seen:
                continue
            seen.add(addr)
            todo.extend(self.dependencies(addr))
        return seen


def build_desired(manifests: ManifestSet, cache: HashCache, project_root: Path) -> Desired:
    """Hash every image (through the stat cache) and turn manifests into desired resources."""
    paths = [img.path for ds in manifests.datasets.values() for img in ds.images]
    paths += [g.init_image.path for g in manifests.generations.values() if g.init_image is not None]
    hashes = cache.hash_many(paths)

    def image(img: ImageFile) -> DesiredImage:
        return DesiredImage(hashes[img.path], img.path, img.display, img.caption, img.format)

    datasets = {
        name: DesiredDataset(name, tuple(image(i) for i in ds.images), f"{ds.source.file}:{ds.source.line}")
        for name, ds in manifests.datasets.items()
    }
    models = {name: _model(m, datasets[m.spec.dataset]) for name, m in manifests.models.items()}
    generations = {name: _generation(g, image, project_root) for name, g in manifests.generations.items()}
    return Desired(datasets, models, generations, manifests.digest)


def _model(model: LoraModel, dataset: DesiredDataset) -> DesiredModel:
    spec = model.spec
    expert = spec.expert_setting.model_dump(mode="json", exclude_none=True) if spec.expert_setting else {}
    settings = {
        "base_model": spec.base_model,
        "width": spec.width,
        "height": spec.height,
        "expert_setting": expert,
        "components": [{"name": c.name, "args": dict(c.args)} for c in spec.components],
    }
    return DesiredModel(
        name=model.name,
        task_type=spec.type,
        dataset=spec.dataset,
        images=dataset.images,
        settings=settings,
        source=f"{model.source.file}:{model.source.line}",
        matrix=model.matrix,
        axes=model.axes,
    )


_NOT_REQUEST = {"type", "output", "init_image", "response_image_type", "matrix", "on_unanswered_submit"}


def _generation(gen: Generation, image: Any, project_root: Path) -> DesiredGeneration:
    spec = gen.spec
    data = spec.model_dump(mode="json", exclude_none=True)
    request: dict[str, Any] = {k: v for k, v in data.items() if k not in _NOT_REQUEST}
    loras = []
    for lora in spec.loras:
        if lora.model is not None:
            loras.append({"model": lora.model, "strength": lora.strength})
        else:
            loras.append({"model_name": lora.model_name, "strength": lora.strength})
    if loras:
        request["loras"] = loras
    else:
        request.pop("loras", None)
    if not request.get("embeddings"):
        request.pop("embeddings", None)
    extra = {"response_image_type": spec.response_image_type}
    return DesiredGeneration(
        name=gen.name,
        task_type=spec.type,
        request=request,
        extra=extra,
        init_image=image(gen.init_image) if gen.init_image is not None else None,
        output_dir=gen.output_dir,
        output_display=display_path(gen.output_dir, project_root.resolve()),
        source=f"{gen.source.file}:{gen.source.line}",
        matrix=gen.matrix,
        axes=gen.axes,
        on_unanswered_submit=spec.on_unanswered_submit,
    )

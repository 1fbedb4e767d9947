"""Pure: the state, and the hashes of the files on disk now, as the gallery's pages in plain data.

Every image is a `Picture`: where the full image is, the thumbnail it gets (named by its content hash), and
alt text written from its parameters. A matrix's members are laid out as grids: the last axis as columns,
the one before it as rows, and any further axes as one grid per combination, stacked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.load.matrix import format_value, matrix_of
from reconciler.state import DatasetEntry, FileRecord, GenerationEntry, ModelEntry, State
from reconciler.status import Status

THUMB_SUFFIX = ".jpg"
DATASET_SAMPLE = 8  # dataset thumbnails shown per model

Condition = Literal["ok", "missing", "changed", "unreadable"]


@dataclass(frozen=True)
class Picture:
    src: str  # the full image, relative to the project folder
    thumb: str | None  # the thumbnail's file name in thumbs/ (None: the image is not on disk)
    alt: str
    condition: Condition = "ok"


@dataclass(frozen=True)
class Earlier:
    """One history record: the images a generation had before it was replaced."""

    when: str
    identity: str
    changes: tuple[tuple[str, str, str], ...]  # (parameter, then, now) that differ from the current ones
    params: tuple[tuple[str, str], ...]
    pictures: tuple[Picture, ...]


@dataclass(frozen=True)
class GenerationView:
    address: str
    name: str
    matrix: str | None
    axes: tuple[tuple[str, Any], ...]
    status: str
    output: str
    params: tuple[tuple[str, str], ...]
    pictures: tuple[Picture, ...]
    history: tuple[Earlier, ...]
    page: str  # its page, relative to the gallery folder

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.axes)


@dataclass(frozen=True)
class Grid:
    title: str  # the values of the stacked axes ("" for a single grid)
    row_axis: str | None
    col_axis: str
    rows: tuple[str, ...]  # formatted values
    cols: tuple[str, ...]
    cells: tuple[tuple[GenerationView | None, ...], ...]


@dataclass(frozen=True)
class MatrixView:
    name: str
    address: str
    page: str
    members: tuple[GenerationView, ...]
    axes: tuple[tuple[str, tuple[str, ...]], ...]  # (label, formatted values in order)
    common: tuple[tuple[str, str], ...]  # parameters every member shares
    grids: tuple[Grid, ...]

    @property
    def cover(self) -> Picture | None:
        return next((p for m in self.members for p in m.pictures if p.thumb), None)


@dataclass(frozen=True)
class ModelView:
    address: str
    name: str
    matrix: str | None
    label: str
    status: str
    ok: bool
    task_name: str
    model_name: str
    dataset: str
    dataset_images: int
    samples: tuple[Picture, ...]
    settings: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Gallery:
    title: str
    serial: int
    models: tuple[ModelView, ...]
    generations: tuple[GenerationView, ...]  # plain ones
    matrices: tuple[MatrixView, ...]
    images: int  # current images shown


def thumb_name(sha256: str) -> str:
    return sha256[:24] + THUMB_SUFFIX


def page_of(name: str) -> str:
    """A generation's page: `g/<name>.html`; a matrix member's `m/<matrix>/<hash of its name>.html`."""
    base = matrix_of(name)
    if base is None:
        return f"g/{name}.html"
    return f"m/{base}/{hashlib.sha256(name.encode()).hexdigest()[:12]}.html"


def build(state: State, present: Mapping[str, str], title: str, unreadable: Collection[str] = frozenset()) -> Gallery:
    """The gallery of `state`; `present` maps each image path (relative to the project) on disk to its hash,
    `unreadable` holds the hashes of images that are no image Pillow can read."""

    def picture(record: FileRecord, alt: str) -> Picture:
        now = present.get(record.path)
        if now is None:
            return Picture(record.path, None, alt, "missing")
        if now in unreadable:
            return Picture(record.path, None, alt, "unreadable")
        return Picture(record.path, thumb_name(now), alt, "ok" if now == record.sha256 else "changed")

    datasets = {e.name: e for e in state.resources.values() if isinstance(e, DatasetEntry)}
    models = tuple(
        _model(entry, datasets.get(entry.dataset or ""), picture)
        for entry in sorted(state.models(), key=lambda e: e.name)
    )
    views = [_generation(entry, picture) for entry in sorted(state.generations(), key=lambda e: e.name)]
    plain = tuple(v for v in views if v.matrix is None)
    grouped: dict[str, list[GenerationView]] = {}
    for view in views:
        if view.matrix is not None:
            grouped.setdefault(view.matrix, []).append(view)
    matrices = tuple(_matrix(name, members) for name, members in sorted(grouped.items()))
    shown = sum(1 for v in views for p in v.pictures if p.thumb)
    return Gallery(title, state.serial, models, plain, matrices, shown)


# --- generations --------------------------------------------------------------------------------------


def params_of(attributes: Mapping[str, Any], seed: str | None = None) -> tuple[tuple[str, str], ...]:
    """The parameters a person compares images by, in the order they read them."""
    a = attributes
    rows: list[tuple[str, str]] = [("Prompt", str(a.get("prompt", "")))]
    if a.get("negative_prompt"):
        rows.append(("Negative prompt", str(a["negative_prompt"])))
    asked = a.get("seed", -1)
    if seed is not None and str(seed) != str(asked):
        rows.append(("Seed", f"{seed} (asked {asked})" if asked not in (-1, None) else f"{seed} (random)"))
    else:
        rows.append(("Seed", str(asked)))
    rows.append(("Steps", str(a.get("steps", ""))))
    loras = a.get("loras") or []
    if loras:
        rows.append(("LoRAs", "; ".join(_lora(lora) for lora in loras)))
    rows.append(("Checkpoint", str(a.get("model_name", ""))))
    rows.append(("Size", f"{a.get('width', 512)}×{a.get('height', 512)}"))
    rows.append(("Sampler", f"{a.get('sampler_name', '')}, CFG {a.get('guidance_scale', '')}"))
    kind = str(a.get("type", "txt2img"))
    if kind == "img2img":
        init = a.get("init_image") or {}
        strength = a.get("strength")
        shown = f"from {init.get('file', '?')}" + (f", strength {strength}" if strength is not None else "")
        rows.append(("img2img", shown))
    return tuple(rows)


def _lora(lora: Mapping[str, Any]) -> str:
    name = str(lora.get("model") or lora.get("model_name") or "?")
    trained = lora.get("model_name")
    shown = f"{name} ({trained})" if lora.get("model") and trained and trained != name else name
    return f"{shown} × {lora.get('strength', 1.0)}"


def alt_text(name: str, params: tuple[tuple[str, str], ...], index: int, count: int) -> str:
    """What a screen reader says of an image: whose it is and what made it."""
    values = dict(params)
    parts = [f"“{values.get('Prompt', '')}”", f"seed {values.get('Seed', '?')}", f"{values.get('Steps', '?')} steps"]
    if "LoRAs" in values:
        parts.append(f"LoRA {values['LoRAs']}")
    parts += [values.get("Checkpoint", ""), values.get("Size", "")]
    which = f" image {index + 1} of {count}" if count > 1 else ""
    return f"{name}{which}: " + ", ".join(p for p in parts if p)


def _generation(entry: GenerationEntry, picture: Any) -> GenerationView:
    params = params_of(entry.attributes, entry.seed)
    count = len(entry.files)
    pictures = tuple(picture(f, alt_text(entry.name, params, i, count)) for i, f in enumerate(entry.files))
    history = tuple(_earlier(entry, record, params, picture) for record in reversed(entry.history))
    return GenerationView(
        address=entry.address,
        name=entry.name,
        matrix=entry.matrix,
        axes=tuple((str(k), v) for k, v in entry.axes),
        status=_status(entry.status, bool(entry.files), entry.reason),
        output=entry.output or "",
        params=params,
        pictures=pictures,
        history=history,
        page=page_of(entry.name),
    )


def _earlier(entry: GenerationEntry, record: Any, now: tuple[tuple[str, str], ...], picture: Any) -> Earlier:
    params = params_of(record.attributes, record.seed) if record.attributes else ()
    current = dict(now)
    changes = tuple((k, v, current.get(k, "")) for k, v in params if current.get(k) != v)
    count = len(record.files)
    when = record.replaced_at.replace("T", " ").removesuffix("Z")
    pictures = tuple(
        picture(f, alt_text(f"{entry.name} before {when}", params or now, i, count)) for i, f in enumerate(record.files)
    )
    return Earlier(when, record.identity[:12], changes, params, pictures)


def _status(status: Status, has_files: bool, reason: str | None) -> str:
    if status == Status.SUCCEEDED:
        return "generated" if has_files else "no images"
    if status == Status.FAILED:
        return f"failed: {reason}" if reason else "failed"
    if status in (Status.RUNNING, Status.SUBMITTING):
        return "running on Novita"
    return str(status)


# --- matrices -----------------------------------------------------------------------------------------


def _order(values: list[Any]) -> list[Any]:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return sorted(values, key=(lambda v: float(v)) if numbers else (lambda v: str(v)))


def _matrix(name: str, members: list[GenerationView]) -> MatrixView:
    raw: dict[str, list[Any]] = {}
    for member in members:
        for label, value in member.axes:
            if all(format_value(value) != format_value(v) for v in raw.setdefault(label, [])):
                raw[label].append(value)
    labels = sorted(raw)
    axes = tuple((label, tuple(format_value(v) for v in _order(raw[label]))) for label in labels)
    by_key = {tuple(format_value(v) for _, v in m.axes): m for m in members}
    common = tuple(row for row in (members[0].params if members else ()) if all(row in m.params for m in members[1:]))
    return MatrixView(
        name=name,
        address=f"Generation/{name}",
        page=f"m/{name}.html",
        members=tuple(members),
        axes=axes,
        common=common,
        grids=_grids(axes, by_key),
    )


def _grids(
    axes: tuple[tuple[str, tuple[str, ...]], ...], by_key: Mapping[tuple[str, ...], GenerationView]
) -> tuple[Grid, ...]:
    """The last axis as columns, the one before it as rows, one grid per combination of the others."""
    if not axes:
        return ()
    labels = [label for label, _ in axes]
    col_axis, cols = axes[-1]
    row_axis, rows = (axes[-2][0], axes[-2][1]) if len(axes) > 1 else (None, ("",))
    stacked = axes[:-2] if len(axes) > 2 else ()
    combos: list[tuple[str, ...]] = [()]
    for _, values in stacked:
        combos = [(*combo, value) for combo in combos for value in values]
    grids = []
    for combo in combos:
        title = ", ".join(f"{label}={value}" for (label, _), value in zip(stacked, combo, strict=True))
        cells = []
        for row in rows:
            line = []
            for col in cols:
                key_values = {**dict(zip(labels[: len(combo)], combo, strict=True)), col_axis: col}
                if row_axis is not None:
                    key_values[row_axis] = row
                line.append(by_key.get(tuple(key_values[label] for label in labels)))
            cells.append(tuple(line))
        grids.append(Grid(title, row_axis, col_axis, rows, cols, tuple(cells)))
    return tuple(grids)


# --- models -------------------------------------------------------------------------------------------


def _model(entry: ModelEntry, dataset: DatasetEntry | None, picture: Any) -> ModelView:
    images = (dataset.attributes.get("images") if dataset else None) or entry.attributes.get("images") or []
    samples = tuple(
        picture(FileRecord(path=str(i.get("file", "")), sha256=str(i.get("sha256", ""))), _caption(i, entry.name))
        for i in images[:DATASET_SAMPLE]
        if isinstance(i, dict)
    )
    ok = entry.status == Status.SUCCEEDED and bool(entry.model_name)
    status = "trained" if ok else (f"failed: {entry.reason}" if entry.status == Status.FAILED else str(entry.status))
    settings = entry.attributes
    expert = settings.get("expert_setting") or {}
    rows = [("Base model", str(settings.get("base_model", "")))]
    rows += [(key.replace("_", " "), format_value(value)) for key, value in sorted(expert.items())]
    return ModelView(
        address=entry.address,
        name=entry.name,
        matrix=entry.matrix,
        label=", ".join(f"{k}={format_value(v)}" for k, v in entry.axes),
        status=status,
        ok=ok,
        task_name=entry.task_name or "",
        model_name=entry.model_name or "",
        dataset=entry.dataset or "",
        dataset_images=len(images),
        samples=samples,
        settings=tuple(rows),
    )


def _caption(image: Mapping[str, Any], model: str) -> str:
    caption = image.get("caption")
    what = f"training image {image.get('file', '')} of {model}"
    return f"{what}: {caption}" if caption else what


def image_paths(state: State) -> list[str]:
    """Every image the gallery may show, relative to the project folder (for hashing before `build`)."""
    paths: list[str] = []
    for entry in state.generations():
        paths += [f.path for f in entry.files]
        paths += [f.path for record in entry.history for f in record.files]
    datasets = {e.name: e for e in state.resources.values() if isinstance(e, DatasetEntry)}
    for model in state.models():
        dataset = datasets.get(model.dataset or "")
        images = (dataset.attributes.get("images") if dataset else None) or model.attributes.get("images") or []
        paths += [str(i.get("file", "")) for i in images[:DATASET_SAMPLE] if isinstance(i, dict)]
    return list(dict.fromkeys(p for p in paths if p))

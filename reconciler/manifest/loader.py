"""Reads files, never the network or the state: a ManifestSet, or every problem at once as file:line:col."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.errors import ConfigError, ManifestError, Problem
from reconciler.files import display_path
from reconciler.imagefiles import Found, ImageFinder, KnownFormats
from reconciler.manifest.loaded import Dataset, Generation, ImageFile, LoraModel, ManifestSet, Source
from reconciler.manifest.messages import translate
from reconciler.manifest.schema import (
    DOCUMENTS,
    KINDS,
    LORA_FILE_SUFFIXES,
    MAX_TRAINING_IMAGES,
    DatasetSpec,
    GenerationSpec,
    LoraModelSpec,
)
from reconciler.manifest.words import describe, dotted, reference_hint, suggest
from reconciler.yamlsource import Document, Pos, parse_documents


@dataclass
class _Draft:
    """One document being loaded: what is known of it so far."""

    kind: str
    name: str | None
    file: str
    doc: Document
    base: Path  # the folder relative paths in it are resolved from
    valid: BaseModel | None = None
    images: list[tuple[ImageFile, int]] = field(default_factory=list)  # (image, entry index)
    files_ok: bool = True
    output_dir: Path | None = None
    init_image: ImageFile | None = None

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}" if self.name is not None else ""

    @property
    def raw_spec(self) -> dict[str, Any]:
        spec = self.doc.data.get("spec") if isinstance(self.doc.data, dict) else None
        return spec if isinstance(spec, dict) else {}


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.incomplete = False  # some document could not be read: references to it cannot be judged

    def at(self, file: str, pos: Pos, where: str, message: str) -> None:
        self.problems.append(Problem(file, pos.line, pos.col, where, message))

    def draft(self, draft: _Draft, path: tuple[str | int, ...], message: str, at_key: bool = False) -> None:
        pos = draft.doc.key_pos(path) if at_key else draft.doc.value_pos(path)
        where = ": ".join(p for p in (draft.address, dotted(path)) if p)
        self.at(draft.file, pos, where, message)

    def replace(self, draft: _Draft, path: tuple[str | int, ...], message: str, at_key: bool = False) -> None:
        """Report `message` instead of what was said about `path` so far (a more precise diagnosis)."""
        where = ": ".join(p for p in (draft.address, dotted(path)) if p)
        self.problems = [p for p in self.problems if not (p.file == draft.file and p.where == where)]
        self.draft(draft, path, message, at_key)


def _manifest_files(paths: Sequence[Path], root: Path, out: _Collector) -> list[tuple[Path, str]]:
    """(absolute path, display) of every manifest file under `paths`, sorted, each once."""
    found: dict[str, Path] = {}

    def display(path: Path) -> str:
        return display_path(path, root)

    for given in paths:
        path = Path(os.path.normpath(root / given))
        if path.is_dir():
            before = len(found)
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in names:
                    if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                        file = Path(folder) / name
                        found.setdefault(display(file), file)
            if len(found) == before:
                out.at(display(path), Pos(1, 1), "", "no *.yaml or *.yml manifest files in this folder")
        elif path.is_file():
            found.setdefault(display(path), path)
        else:
            raise ConfigError(_nothing_at(given, root))
    return [(found[key], key) for key in sorted(found)]


def _nothing_at(given: Path, root: Path) -> str:
    """A manifest path that does not exist, most often a command run from the wrong folder: where it looked,
    and the nearest folder around that has manifests of that name, to give with -C."""
    what = f"no {given}/ folder" if given == Path("manifests") else f"no manifest file or folder {given}"
    message = (
        f"{what} in {root}. Run reconciler from the project folder, or name that folder with -C DIR "
        "(and the manifests in it with -f PATH)"
    )
    if given.is_absolute():
        return message
    near = [folder for folder in root.parents if (folder / given).exists()][:1]
    if not near:
        near = [child for child in sorted(root.iterdir()) if child.is_dir() and (child / given).exists()][:1]
    if near:
        hint = os.path.relpath(near[0], root)
        message += f"; there is {display_path(near[0] / given, root)}: reconciler -C {hint} ..."
    return message


def _yaml_where(data: Any, path: tuple[str | int, ...] | None) -> str:
    address = ""
    if isinstance(data, dict) and str(data.get("kind")) in DOCUMENTS and isinstance(data.get("metadata"), dict):
        name = data["metadata"].get("name")
        address = f"{data['kind']}/{name}" if isinstance(name, str) else ""
    return ": ".join(part for part in (address, dotted(path or ())) if part)


def _decode(raw: bytes, file: str, out: _Collector) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        out.incomplete = True
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        out.at(file, Pos(line, col), "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8")
        return None


def _draft(doc: Document, file: str, base: Path, out: _Collector) -> _Draft | None:
    data = doc.data
    if not isinstance(data, dict):
        out.incomplete = True
        out.at(
            file,
            doc.start,
            "",
            f"a document must be a mapping with apiVersion, kind, metadata and spec; got {describe(data)}",
        )
        return None
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in DOCUMENTS:
        out.incomplete = True
        if "kind" not in data:
            out.at(file, doc.start, "kind", "required field missing; expected `Dataset`, `LoraModel` or `Generation`")
        else:
            hint = suggest(str(kind), KINDS) if isinstance(kind, str) else "; expected one of " + ", ".join(KINDS)
            out.at(file, doc.value_pos(("kind",)), "kind", f"unknown kind {describe(kind)}{hint}")
        return None
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    draft = _Draft(kind, name if isinstance(name, str) else None, file, doc, base)
    out.incomplete |= draft.name is None
    model = DOCUMENTS[kind]
    try:
        draft.valid = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            for located in translate(model, error):
                out.draft(draft, located.path, located.message, located.at_key)
    return draft


def _dataset_files(draft: _Draft, finder: ImageFinder, out: _Collector) -> None:
    entries = draft.raw_spec.get("images")
    if not isinstance(entries, list):
        return
    by_path: dict[Path, int] = {}  # resolved path → index in draft.images
    explicit: dict[Path, tuple[str, int]] = {}  # resolved path → (explicit caption, entry index)
    for index, entry in enumerate(entries):
        caption: str | None = None
        where: tuple[str | int, ...]
        if isinstance(entry, str):
            given, where = entry, ("spec", "images", index)
        elif isinstance(entry, dict) and isinstance(entry.get("path"), str):
            given, where = entry["path"], ("spec", "images", index, "path")
            if isinstance(entry.get("caption"), str) and entry["caption"]:
                caption = entry["caption"]
        else:
            continue  # the model validation reported it
        found, problems = finder.expand(draft.base, given)
        for problem in problems:
            out.draft(draft, where, problem)
            draft.files_ok = False
        for image in found:
            _add_image(draft, image, caption, index, by_path, explicit, out)


def _add_image(
    draft: _Draft,
    image: Found,
    caption: str | None,
    index: int,
    by_path: dict[Path, int],
    explicit: dict[Path, tuple[str, int]],
    out: _Collector,
) -> None:
    at = by_path.get(image.path)
    if at is None:
        by_path[image.path] = len(draft.images)
        draft.images.append((ImageFile(image.path, image.display, caption or image.sidecar, image.format), index))
        if caption is not None:
            explicit[image.path] = (caption, index)
        return
    if caption is None:
        return  # a repeat without its own caption: the first position and caption stay
    if image.path in explicit:
        first, first_index = explicit[image.path]
        if first != caption:
            out.draft(
                draft,
                ("spec", "images", index, "caption"),
                f"{image.display} already has the caption {describe(first)} from spec.images[{first_index}]; "
                "one image cannot have two captions",
            )
            draft.files_ok = False
        return
    explicit[image.path] = (caption, index)
    old, old_index = draft.images[at]
    draft.images[at] = (ImageFile(old.path, old.display, caption, old.format), old_index)


def _generation_files(draft: _Draft, finder: ImageFinder, out: _Collector) -> None:
    spec = draft.raw_spec
    output = spec.get("output")
    if isinstance(output, str) and output:
        draft.output_dir, problems = finder.output_dir(draft.base, output)
        for problem in problems:
            out.draft(draft, ("spec", "output"), problem)
    init = spec.get("init_image")
    if isinstance(init, str) and init:
        found, problems = finder.init_image(draft.base, init)
        for problem in problems:
            out.draft(draft, ("spec", "init_image"), problem)
        if found is not None:
            draft.init_image = ImageFile(found.path, found.display, None, found.format)


def _cross_checks(drafts: list[_Draft], out: _Collector) -> None:
    named: dict[str, dict[str, _Draft]] = {kind: {} for kind in KINDS}
    for draft in drafts:
        if draft.name is None:
            continue
        first = named[draft.kind].get(draft.name)
        if first is None:
            named[draft.kind][draft.name] = draft
            continue
        pos = first.doc.value_pos(("metadata", "name"))
        out.draft(
            draft,
            ("metadata", "name"),
            f"duplicate name: {draft.address} is already defined at {first.file}:{pos.line}:{pos.col}",
        )
    datasets, models = named["Dataset"], named["LoraModel"]
    checked: set[tuple[str, int]] = set()
    counted: set[str] = set()
    for draft in drafts:
        spec = draft.raw_spec
        if draft.kind == "LoraModel" and isinstance(spec.get("dataset"), str):
            dataset = datasets.get(spec["dataset"])
            if dataset is None and not out.incomplete:
                hint = reference_hint(spec["dataset"], datasets, "Dataset")
                out.draft(draft, ("spec", "dataset"), f"no Dataset named {describe(spec['dataset'])}{hint}")
            elif dataset is not None:
                _training_images(draft, dataset, checked, counted, out)
        if draft.kind == "Generation" and isinstance(spec.get("loras"), list):
            for index, ref in enumerate(spec["loras"]):
                _lora_file_not_ours(draft, index, ref, models, out)
                model = ref.get("model") if isinstance(ref, dict) else None
                if isinstance(model, str) and model not in models and not out.incomplete:
                    hint = reference_hint(ref["model"], models, "LoraModel")
                    out.draft(
                        draft, ("spec", "loras", index, "model"), f"no LoraModel named {describe(ref['model'])}{hint}"
                    )


def _lora_file_not_ours(draft: _Draft, index: int, ref: Any, models: dict[str, _Draft], out: _Collector) -> None:
    """`loras: [{model_name: me-v1}]` where me-v1 is our LoraModel: it would generate without the LoRA."""
    name = ref.get("model_name") if isinstance(ref, dict) else None
    if not isinstance(name, str):
        return
    stem = name.strip()
    for suffix in LORA_FILE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    if stem.startswith("LoraModel/"):
        stem = stem.removeprefix("LoraModel/")
    if stem in models:
        path = ("spec", "loras", index, "model_name")
        out.replace(
            draft,
            path,
            f"{describe(name)} is the LoraModel {stem} of these manifests, not a Novita file name; "
            f"did you mean `model: {stem}`?",
            at_key=True,
        )


def _training_images(
    model: _Draft, dataset: _Draft, checked: set[tuple[str, int]], counted: set[str], out: _Collector
) -> None:
    """A dataset used for training: 1 to 50 images; for style training, a caption on each."""
    count = len(dataset.images)
    too_many = count > MAX_TRAINING_IMAGES or (count == 0 and dataset.files_ok)
    if too_many and dataset.name is not None and dataset.name not in counted and dataset.valid is not None:
        counted.add(dataset.name)
        out.draft(
            dataset,
            ("spec", "images"),
            f"{count} images after removing duplicates, but {model.address} trains on it and "
            f"Novita accepts 1 to {MAX_TRAINING_IMAGES}",
            at_key=True,
        )
    if model.raw_spec.get("type") != "style":
        return
    missing: dict[int, list[str]] = {}
    for image, index in dataset.images:
        if image.caption is None:
            missing.setdefault(index, []).append(image.display)
    for index, names in sorted(missing.items()):
        if (str(dataset.name), index) in checked:
            continue
        checked.add((str(dataset.name), index))
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.draft(
            dataset,
            ("spec", "images", index),
            f"no caption for {shown}, but {model.address} is style training, which needs a caption on every "
            "image (add `caption:` or a sidecar <image>.txt)",
        )


def load_manifests(paths: Sequence[Path], project_root: Path, known: KnownFormats | None = None) -> ManifestSet:
    """Load and validate every manifest under `paths` (files or folders, relative to `project_root`).
    `known`: image formats sniffed by an earlier run (the stat cache), so unchanged images are not opened.

    Raises ManifestError listing every problem in the set, located as file:line:col.
    """
    root = Path(os.path.abspath(project_root))
    out = _Collector()
    finder = ImageFinder(root, known)
    digest = hashlib.sha256()
    drafts: list[_Draft] = []
    files = _manifest_files(paths, root, out)
    for path, display in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            out.at(display, Pos(1, 1), "", f"cannot read: {exc.strerror or exc}")
            out.incomplete = True
            continue
        digest.update(f"{display}\0{len(raw)}\0".encode())
        digest.update(raw)
        text = _decode(raw, display, out)
        if text is None:
            continue
        documents, yaml_problems = parse_documents(text)
        for problem in yaml_problems:
            out.incomplete |= problem.fatal
            where = _yaml_where(problem.document.data if problem.document else None, problem.path)
            out.at(display, Pos(problem.line, problem.col), where, problem.message)
        for doc in documents:
            draft = _draft(doc, display, path.parent, out)
            if draft is None:
                continue
            drafts.append(draft)
            if draft.kind == "Dataset":
                _dataset_files(draft, finder, out)
            elif draft.kind == "Generation":
                _generation_files(draft, finder, out)
    _cross_checks(drafts, out)
    if out.problems:
        raise ManifestError(sorted(set(out.problems)))
    return _assemble(drafts, tuple(path for path, _ in files), digest.hexdigest())


def _assemble(drafts: list[_Draft], files: tuple[Path, ...], digest: str) -> ManifestSet:
    datasets: dict[str, Dataset] = {}
    models: dict[str, LoraModel] = {}
    generations: dict[str, Generation] = {}
    for draft in drafts:
        assert draft.name is not None and draft.valid is not None
        source = Source(draft.file, draft.doc.start.line)
        spec = draft.valid.spec  # type: ignore[attr-defined]
        if isinstance(spec, DatasetSpec):
            datasets[draft.name] = Dataset(draft.name, source, spec, tuple(image for image, _ in draft.images))
        elif isinstance(spec, LoraModelSpec):
            models[draft.name] = LoraModel(draft.name, source, spec)
        else:
            assert isinstance(spec, GenerationSpec) and draft.output_dir is not None
            generations[draft.name] = Generation(draft.name, source, spec, draft.output_dir, draft.init_image)
    return ManifestSet(datasets, models, generations, tuple(sorted(files)), digest)

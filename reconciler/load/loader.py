"""Reads files, never the network or the state: a ManifestSet, or every problem at once as file:line:col."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.errors import ConfigError, ManifestError, Problem
from reconciler.files import display_path
from reconciler.load.imagefiles import Found, ImageFinder, KnownFormats
from reconciler.load.loaded import Dataset, Generation, ImageFile, LoraModel, ManifestSet, Source
from reconciler.load.matrix import (
    LIMITS,
    SWEEPABLE,
    Axes,
    Axis,
    AxisPath,
    combinations,
    labels,
    member_folder,
    member_label,
    member_name,
    parse_path,
    pattern,
    spelled,
    value_at,
    with_value,
)
from reconciler.load.messages import translate
from reconciler.load.schema import (
    DOCUMENTS,
    KINDS,
    LORA_FILE_SUFFIXES,
    MAX_TRAINING_IMAGES,
    DatasetSpec,
    GenerationSpec,
    LoraModelSpec,
)
from reconciler.load.words import describe, dotted, reference_hint, suggest
from reconciler.load.yamlsource import Document, Pos, parse_documents


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
    axes: list[Axis] = field(default_factory=list)  # its matrix, checked
    members: list[tuple[Axes, BaseModel]] = field(default_factory=list)  # (axes, spec) of each member

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
        self.notes: list[str] = []  # worth a word, not an error (files a folder entry skipped)

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
        for note in finder.notes:
            pos = draft.doc.value_pos(where)
            out.notes.append(str(Problem(draft.file, pos.line, pos.col, draft.address, note)))
        finder.notes.clear()
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


def _matrix(draft: _Draft, out: _Collector) -> None:
    """Check a document's `matrix` and expand it into draft.members, every problem located in the matrix."""
    raw = draft.raw_spec.get("matrix")
    if draft.valid is None or not isinstance(raw, dict):
        return
    spec_model: type[BaseModel] = type(draft.valid.spec)  # type: ignore[attr-defined]
    base = {k: v for k, v in draft.raw_spec.items() if k != "matrix"}
    if not raw:
        out.draft(draft, ("spec", "matrix"), "a matrix needs at least one axis, e.g. `seed: [1, 2, 3]`", at_key=True)
        return
    found: list[tuple[str, AxisPath, list[Any]]] = []
    ok = True
    seen: dict[AxisPath, str] = {}
    for key, values in raw.items():
        path = _axis_path(draft, key, base, out)
        if path is None:
            ok = False
            continue
        if path in seen:
            out.draft(draft, ("spec", "matrix", key), f"the same field as `{seen[path]}`; give it once", at_key=True)
            ok = False
            continue
        seen[path] = key
        checked = _axis_values(draft, spec_model, base, key, path, values, out)
        if checked is None:
            ok = False
            continue
        found.append((key, path, checked))
    if not ok:
        return
    names = labels([path for _, path, _ in found])
    draft.axes = [Axis(path, label, tuple(v)) for (_, path, v), label in zip(found, names, strict=True)]
    sizes = [len(axis.values) for axis in draft.axes]
    count = 1
    for size in sizes:
        count *= size
    if count > LIMITS[draft.kind]:
        shape = " × ".join(str(size) for size in sizes)
        out.draft(
            draft,
            ("spec", "matrix"),
            f"this matrix makes {count} members ({shape}); at most {LIMITS[draft.kind]} per {draft.kind}",
            at_key=True,
        )
        return
    by_label = {axis.label: axis for axis in draft.axes}
    reported = 0
    for axes in combinations(draft.axes):
        spec = base
        for label, value in axes:
            spec = with_value(spec, by_label[label].path, value)
        try:
            draft.members.append((axes, spec_model.model_validate(spec)))
        except ValidationError as exc:
            for error in exc.errors():
                for located in translate(spec_model, error):
                    if reported < 3:
                        message = f"{dotted(located.path)}: {located.message}"
                        out.draft(draft, ("spec", "matrix"), f"member [{member_label(axes)}]: {message}", at_key=True)
                    reported += 1


def _axis_path(draft: _Draft, key: str, base: dict[str, Any], out: _Collector) -> AxisPath | None:
    """The field path a matrix key names, if it can be swept; else a located problem and None."""
    where = ("spec", "matrix", key)
    allowed = SWEEPABLE[draft.kind]
    shown = ", ".join(allowed)
    path = parse_path(key)
    if path is None:
        out.draft(draft, where, f"not a field path; write it like `{allowed[0]}` or `{allowed[-1]}`", at_key=True)
        return None
    if pattern(path) not in allowed:
        if _names_field(DOCUMENTS[draft.kind].model_fields["spec"].annotation, path):
            message = f"`{key}` cannot be swept; a {draft.kind} matrix sweeps {shown}"
        else:
            message = f"unknown field{suggest(key, [a.replace('[N]', '[0]') for a in allowed])}"
        out.draft(draft, where, message, at_key=True)
        return None
    for depth, part in enumerate(path):
        if isinstance(part, int):
            items = value_at(base, path[:depth]) if _has(base, path[:depth]) else None
            count = len(items) if isinstance(items, list) else 0
            if part >= count:
                out.draft(
                    draft,
                    where,
                    f"spec.{spelled(path[:depth])} has no item [{part}] (it has {count})",
                    at_key=True,
                )
                return None
    return path


def _names_field(model: Any, path: AxisPath) -> bool:
    """Whether `path` names a field of the document model `model` (list indexes step into the items)."""
    current = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return False
        current = _model_in(fields[part].annotation)
    return True


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `list[LoraRef]` or `HiresFix | None`, else itself."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _has(data: Any, path: AxisPath) -> bool:
    try:
        value_at(data, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _axis_values(
    draft: _Draft,
    spec_model: type[BaseModel],
    base: dict[str, Any],
    key: str,
    path: AxisPath,
    values: list[Any],
    out: _Collector,
) -> list[Any] | None:
    """Each value validated as that field would be (its range, type, enum), duplicates refused."""
    checked: list[Any] = []
    first: dict[Any, int] = {}
    ok = True
    for index, value in enumerate(values):
        where = ("spec", "matrix", key, index)
        try:
            valid = spec_model.model_validate(with_value(base, path, value))
        except ValidationError as exc:
            ok = False
            for error in exc.errors():
                for located in translate(spec_model, error):
                    prefix = "" if located.path == path else f"{dotted(located.path)}: "
                    out.draft(draft, where, prefix + located.message)
            continue
        got = value_at(valid.model_dump(mode="python"), path)
        marker = (type(got) is bool, got)
        if marker in first:
            ok = False
            out.draft(draft, where, f"duplicate value {describe(value)} (the same as [{first[marker]}]); give it once")
            continue
        first[marker] = index
        checked.append(got)
    return checked if ok else None


def _swept_models(drafts: list[_Draft], out: _Collector) -> None:
    """A Generation that uses a swept LoraModel runs once per model member: count those members too."""
    swept = {d.name: len(d.members) for d in drafts if d.kind == "LoraModel" and d.members and d.name}
    if not swept:
        return
    for draft in drafts:
        if draft.kind != "Generation" or draft.valid is None:
            continue
        count = max(1, len(draft.members))
        used = _swept_refs(draft, swept)
        for name in used:
            count *= swept[name]
        if used and count > LIMITS["Generation"]:
            out.draft(
                draft,
                ("spec", "loras"),
                f"runs once per member of {', '.join(f'LoraModel/{n}' for n in used)}: {count} members in all; "
                f"at most {LIMITS['Generation']} per Generation",
                at_key=True,
            )


def _swept_refs(draft: _Draft, swept: dict[str, int]) -> list[str]:
    loras = draft.raw_spec.get("loras")
    names = [ref.get("model") for ref in loras if isinstance(ref, dict)] if isinstance(loras, list) else []
    return sorted({name for name in names if isinstance(name, str) and name in swept})


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
            _matrix(draft, out)
            if draft.kind == "Dataset":
                _dataset_files(draft, finder, out)
            elif draft.kind == "Generation":
                _generation_files(draft, finder, out)
    _cross_checks(drafts, out)
    _swept_models(drafts, out)
    if out.problems:
        raise ManifestError(sorted(set(out.problems)))
    loaded = _assemble(drafts, tuple(path for path, _ in files), digest.hexdigest())
    return replace(loaded, notes=tuple(sorted(set(out.notes))))


def _assemble(drafts: list[_Draft], files: tuple[Path, ...], digest: str) -> ManifestSet:
    datasets: dict[str, Dataset] = {}
    models: dict[str, LoraModel] = {}
    generations: dict[str, Generation] = {}
    swept: dict[str, list[LoraModel]] = {}  # a matrix LoraModel's name → its members
    for draft in drafts:
        assert draft.name is not None and draft.valid is not None
        source = Source(draft.file, draft.doc.start.line)
        spec = draft.valid.spec  # type: ignore[attr-defined]
        if isinstance(spec, DatasetSpec):
            datasets[draft.name] = Dataset(draft.name, source, spec, tuple(image for image, _ in draft.images))
        elif isinstance(spec, LoraModelSpec) and draft.members:
            for axes, member in draft.members:
                assert isinstance(member, LoraModelSpec)
                model = LoraModel(member_name(draft.name, axes), source, member, draft.name, axes)
                models[model.name] = model
                swept.setdefault(draft.name, []).append(model)
        elif isinstance(spec, LoraModelSpec):
            models[draft.name] = LoraModel(draft.name, source, spec)
    for draft in drafts:
        if draft.kind == "Generation":
            for generation in _generation_members(draft, swept):
                generations[generation.name] = generation
    return ManifestSet(datasets, models, generations, tuple(sorted(files)), digest)


def _generation_members(draft: _Draft, swept: dict[str, list[LoraModel]]) -> list[Generation]:
    """One Generation per member of its own matrix and per member of each swept LoraModel it uses."""
    assert draft.name is not None and draft.valid is not None and draft.output_dir is not None
    source = Source(draft.file, draft.doc.start.line)
    own = draft.members or [((), draft.valid.spec)]  # type: ignore[attr-defined]
    found: list[Generation] = []
    for axes, spec in own:
        assert isinstance(spec, GenerationSpec)
        refs = sorted({ref.model for ref in spec.loras if ref.model is not None and ref.model in swept})
        for chosen in itertools.product(*(swept[ref] for ref in refs)):
            by_ref = dict(zip(refs, chosen, strict=True))
            model_axes = tuple(
                (f"{ref}.{label}", value) for ref, model in by_ref.items() for label, value in model.axes
            )
            every = tuple(sorted(axes + model_axes, key=lambda axis: axis[0]))
            member = spec
            if by_ref:
                loras = [
                    ref.model_copy(update={"model": by_ref[ref.model].name}) if ref.model in by_ref else ref
                    for ref in spec.loras
                ]
                member = spec.model_copy(update={"loras": loras})
            output = draft.output_dir / member_folder(every) if every else draft.output_dir
            name = member_name(draft.name, every)
            matrix = draft.name if every else None
            found.append(Generation(name, source, member, output, draft.init_image, matrix, every))
    return found

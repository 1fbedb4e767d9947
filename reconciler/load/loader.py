"""Reads files, never the network or the state: a ManifestSet, or every problem at once as file:line:col."""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.errors import ConfigError, ManifestError, Problem
from reconciler.files import display_path
from reconciler.load.crosscheck import cross_checks
from reconciler.load.drafts import Collector, Draft
from reconciler.load.imagefiles import Found, ImageFinder, KnownFormats
from reconciler.load.loaded import Dataset, Generation, ImageFile, LoraModel, ManifestSet, Source
from reconciler.load.manifestcache import ManifestCache
from reconciler.load.matrix import member_folder, member_name
from reconciler.load.matrixcheck import check_matrix, check_swept_models
from reconciler.load.messages import translate
from reconciler.load.schema import DOCUMENTS, KINDS, DatasetSpec, GenerationSpec, LoraModelSpec
from reconciler.load.words import describe, dotted, suggest
from reconciler.load.yamlsource import Document, Pos, parse_documents


def _manifest_files(paths: Sequence[Path], root: Path, out: Collector) -> list[tuple[Path, str]]:
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


def _decode(raw: bytes, file: str, out: Collector) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        out.incomplete = True
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        out.at(file, Pos(line, col), "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8")
        return None


def _draft(doc: Document, file: str, base: Path, out: Collector) -> Draft | None:
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
    draft = Draft(kind, name if isinstance(name, str) else None, file, doc, base)
    out.incomplete |= draft.name is None
    model = DOCUMENTS[kind]
    try:
        draft.valid = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            for located in translate(model, error):
                out.draft(draft, located.path, located.message, located.at_key)
    return draft


def _dataset_files(draft: Draft, finder: ImageFinder, out: Collector) -> None:
    entries = draft.raw_spec.get("images")
    if not isinstance(entries, list):
        return
    by_path: dict[str, int] = {}  # resolved path → index in draft.images
    explicit: dict[str, tuple[str, int]] = {}  # resolved path → (explicit caption, entry index)
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
    draft: Draft,
    image: Found,
    caption: str | None,
    index: int,
    by_path: dict[str, int],
    explicit: dict[str, tuple[str, int]],
    out: Collector,
) -> None:
    key = str(image.path)
    at = by_path.get(key)
    if at is None:
        by_path[key] = len(draft.images)
        draft.images.append((ImageFile(image.path, image.display, caption or image.sidecar, image.format), index))
        if caption is not None:
            explicit[key] = (caption, index)
        return
    if caption is None:
        return  # a repeat without its own caption: the first position and caption stay
    if key in explicit:
        first, first_index = explicit[key]
        if first != caption:
            out.draft(
                draft,
                ("spec", "images", index, "caption"),
                f"{image.display} already has the caption {describe(first)} from spec.images[{first_index}]; "
                "one image cannot have two captions",
            )
            draft.files_ok = False
        return
    explicit[key] = (caption, index)
    old, old_index = draft.images[at]
    draft.images[at] = (ImageFile(old.path, old.display, caption, old.format), old_index)


def _generation_files(draft: Draft, finder: ImageFinder, out: Collector) -> None:
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


def _documents(raw: bytes, display: str, parsed: ManifestCache | None, out: Collector) -> list[Document]:
    """The documents of one file's bytes: from the manifest cache when the same bytes parsed cleanly before
    (positions parsed again only if a problem needs one), else parsed, every YAML problem collected."""
    key = hashlib.sha256(raw).hexdigest() if parsed is not None else ""
    cached = parsed.get(key) if parsed is not None else None
    if cached is not None:
        text = raw.decode("utf-8-sig")  # these bytes decoded before
        return [
            Document(data, start, locate=functools.partial(_nth_document, text, index))
            for index, (start, data) in enumerate(cached)
        ]
    decoded = _decode(raw, display, out)
    if decoded is None:
        return []
    documents, yaml_problems = parse_documents(decoded)
    for problem in yaml_problems:
        out.incomplete |= problem.fatal
        where = _yaml_where(problem.document.data if problem.document else None, problem.path)
        out.at(display, Pos(problem.line, problem.col), where, problem.message)
    if parsed is not None and not yaml_problems:
        parsed.put(key, documents)
    return documents


def _nth_document(text: str, index: int) -> Document:
    return parse_documents(text)[0][index]


def load_manifests(
    paths: Sequence[Path],
    project_root: Path,
    known: KnownFormats | None = None,
    parsed: ManifestCache | None = None,
) -> ManifestSet:
    """Load and validate every manifest under `paths` (files or folders, relative to `project_root`).
    `known`: image formats sniffed by an earlier run (the stat cache), so unchanged images are not opened.
    `parsed`: documents parsed by an earlier run (the manifest cache), so unchanged files are not parsed again;
    the files of this load are put in it (the caller saves it).

    Raises ManifestError listing every problem in the set, located as file:line:col.
    """
    root = Path(os.path.abspath(project_root))
    out = Collector()
    finder = ImageFinder(root, known)
    digest = hashlib.sha256()
    drafts: list[Draft] = []
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
        for doc in _documents(raw, display, parsed, out):
            draft = _draft(doc, display, path.parent, out)
            if draft is None:
                continue
            drafts.append(draft)
            check_matrix(draft, out)
            if draft.kind == "Dataset":
                _dataset_files(draft, finder, out)
                finder.forget_files()
            elif draft.kind == "Generation":
                _generation_files(draft, finder, out)
    cross_checks(drafts, out)
    check_swept_models(drafts, out)
    if out.problems:
        raise ManifestError(sorted(set(out.problems)))
    loaded = _assemble(drafts, tuple(path for path, _ in files), digest.hexdigest())
    return replace(loaded, notes=tuple(sorted(set(out.notes))))


def _assemble(drafts: list[Draft], files: tuple[Path, ...], digest: str) -> ManifestSet:
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


def _generation_members(draft: Draft, swept: dict[str, list[LoraModel]]) -> list[Generation]:
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

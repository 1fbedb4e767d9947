"""Pure: the frozen types `load_manifests` returns: a ManifestSet of validated resources, their sources and files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.load.imagetype import ImageFormat
from reconciler.load.schema import DatasetSpec, GenerationSpec, LoraModelSpec


@dataclass(frozen=True)
class Source:
    file: str  # relative to the project folder
    line: int  # 1-based line where the document starts


@dataclass(frozen=True, slots=True)  # one per photo: no __dict__ each
class ImageFile:
    path: Path  # absolute, resolved
    display: str  # relative to project_root, as shown to users
    caption: str | None  # explicit caption, else the sidecar <stem>.txt (stripped), else None
    format: ImageFormat  # sniffed from the bytes, not the extension


@dataclass(frozen=True)
class Dataset:
    name: str
    source: Source
    spec: DatasetSpec
    images: tuple[ImageFile, ...]


@dataclass(frozen=True)
class LoraModel:
    name: str  # a matrix member's name is `<matrix>[<label>=<value>,...]`
    source: Source
    spec: LoraModelSpec  # a member's: the matrix's values filled in
    matrix: str | None = None  # the matrix (document) a member comes from
    axes: tuple[tuple[str, Any], ...] = ()  # a member's (label, value), sorted by label


@dataclass(frozen=True)
class Generation:
    name: str
    source: Source
    spec: GenerationSpec
    output_dir: Path  # a member's: <output>/<label>=<value>,...
    init_image: ImageFile | None
    matrix: str | None = None  # the matrix (document) a member comes from
    axes: tuple[tuple[str, Any], ...] = ()  # a member's (label, value) sorted by label, swept models' included


@dataclass(frozen=True)
class ManifestSet:
    datasets: dict[str, Dataset]
    models: dict[str, LoraModel]
    generations: dict[str, Generation]
    files: tuple[Path, ...]  # every manifest file read, sorted
    digest: str  # sha256 over (display path, bytes) of every manifest file, sorted
    notes: tuple[str, ...] = ()  # not errors, worth a word: files a folder entry skips, as file:line:col: text

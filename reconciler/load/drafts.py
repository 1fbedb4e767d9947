"""The loader's working types: a document being loaded (Draft) and the problems found so far (Collector)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from reconciler.errors import Problem
from reconciler.load.loaded import ImageFile
from reconciler.load.matrix import Axes, Axis
from reconciler.load.words import dotted
from reconciler.load.yamlsource import Document, Pos


@dataclass
class Draft:
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


class Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.incomplete = False  # some document could not be read: references to it cannot be judged
        self.notes: list[str] = []  # worth a word, not an error (files a folder entry skipped)

    def at(self, file: str, pos: Pos, where: str, message: str) -> None:
        self.problems.append(Problem(file, pos.line, pos.col, where, message))

    def draft(self, draft: Draft, path: tuple[str | int, ...], message: str, at_key: bool = False) -> None:
        pos = draft.doc.key_pos(path) if at_key else draft.doc.value_pos(path)
        where = ": ".join(p for p in (draft.address, dotted(path)) if p)
        self.at(draft.file, pos, where, message)

    def replace(self, draft: Draft, path: tuple[str | int, ...], message: str, at_key: bool = False) -> None:
        """Report `message` instead of what was said about `path` so far (a more precise diagnosis)."""
        where = ": ".join(p for p in (draft.address, dotted(path)) if p)
        self.problems = [p for p in self.problems if not (p.file == draft.file and p.where == where)]
        self.draft(draft, path, message, at_key)

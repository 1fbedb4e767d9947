"""Manifest files already parsed, by the sha256 of their bytes: an unchanged file is not parsed again.

Kept beside the stat cache (`state/.state.manifests.hashcache.json`) and rebuilt when lost: an entry holds each
document's start and data, only for a file that parsed without a YAML problem into plain JSON values (strings,
numbers, booleans, null, lists, mappings; no value shared through an alias). Positions are not kept: a problem
found later in a cached document parses its file again for them (Document.locate). The file is read whole and
checked; anything unexpected in it, or another reconciler version, is an empty cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.files import atomic_write
from reconciler.load.yamlsource import Document, Pos

CACHE_VERSION = 1
Parsed = list[tuple[Pos, Any]]  # each document of a file: where it starts, its data


class ManifestCache:
    """Parsed documents by the sha256 of their file; keeps only the files of the last load when saved."""

    def __init__(self, cache_file: Path | None) -> None:
        self.cache_file = cache_file
        self._read: dict[str, list[list[Any]]] = _read_cache(cache_file) if cache_file is not None else {}
        self._used: dict[str, list[list[Any]]] = {}

    def get(self, digest: str) -> Parsed | None:
        """The documents of the file whose bytes hash to `digest`, as parsed before; None if not cached."""
        entry = self._read.get(digest)
        if entry is None:
            return None
        self._used[digest] = entry
        return [(Pos(line, col), data) for line, col, data in entry]

    def put(self, digest: str, documents: list[Document]) -> None:
        """Remember the documents of a file parsed without problems, if their data is plain JSON."""
        seen: set[int] = set()
        if documents and all(isinstance(doc.data, dict) and _plain(doc.data, seen) for doc in documents):
            self._used[digest] = [[doc.start.line, doc.start.col, doc.data] for doc in documents]

    def save(self) -> None:
        """Write the files used by this load (atomically, not durably: a lost cache only costs a parse); nothing
        when they are the ones read, or none."""
        if self.cache_file is None or not self._used or self._used.keys() == self._read.keys():
            return
        data = {"version": CACHE_VERSION, "reconciler": __version__, "files": self._used}
        atomic_write(self.cache_file, json.dumps(data, separators=(",", ":")), durable=False)
        self._read = self._used


def _plain(value: Any, seen: set[int]) -> bool:
    """Whether `value` comes back the same from JSON, and shares no list or mapping (an alias) with another."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return True
    if kind is list or kind is dict:
        if id(value) in seen:
            return False
        seen.add(id(value))
        if kind is dict:
            return all(type(k) is str and _plain(v, seen) for k, v in value.items())
        return all(_plain(item, seen) for item in value)
    return False


def _read_cache(cache_file: Path) -> dict[str, list[list[Any]]]:
    try:
        data = json.loads(cache_file.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("reconciler") != __version__:
        return {}
    files = data.get("files")
    if not isinstance(files, dict):
        return {}
    for digest, entry in files.items():
        if not (isinstance(digest, str) and len(digest) == 64 and isinstance(entry, list) and entry):
            return {}
        for document in entry:
            if not (isinstance(document, list) and len(document) == 3):
                return {}
            line, col, data = document
            if not (type(line) is int and type(col) is int and line > 0 and col > 0 and isinstance(data, dict)):
                return {}
    return files

"""Content hashes of files: streamed sha256 with a stat cache, hashed in parallel threads.

The cache maps a path to (size, mtime_ns, inode, sha256[, image format]) and is kept beside the state file,
so an unchanged tree is not read again: neither hashed nor even opened to sniff its image type. Only this
module reads image bytes for hashing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.files import atomic_write

if TYPE_CHECKING:
    from reconciler.load.manifestcache import ManifestCache

CHUNK = 1 << 20
CACHE_VERSION = 1
Stamp = tuple[int, int, int]  # what says a file is unchanged: (size, mtime_ns, inode)
Entry = tuple[int | str, ...]  # (size, mtime_ns, inode, sha256[, image format]): one per file, kept as a tuple


def _stamp(st: os.stat_result) -> Stamp:
    return st.st_size, st.st_mtime_ns, st.st_ino


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks (memory does not grow with file size)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


class HashCache:
    """sha256 of files by path, trusting a cached value while size, mtime_ns and inode are unchanged.

    `parsed`: the manifest cache kept beside it, saved with it (so a command that fails before its plan is
    made writes neither)."""

    def __init__(self, cache_file: Path | None, parsed: ManifestCache | None = None) -> None:
        self.cache_file = cache_file
        self.parsed = parsed
        self._entries: dict[str, Entry] = {}
        self._dirty = False
        self._stats: dict[str, Stamp] = {}  # taken by known_format for a changed file, used once by its hashing
        self._unchanged: set[str] = set()  # files known_format found matching their entry, for the hashing after
        self._formats: dict[str, str] = {}  # sniffed formats waiting for their file's entry
        if cache_file is not None:
            self._entries = _read_cache(cache_file)

    @staticmethod
    def _matches(entry: Entry | None, stamp: Stamp) -> bool:
        return entry is not None and entry[0] == stamp[0] and entry[1] == stamp[1] and entry[2] == stamp[2]

    def _fresh(self, path: Path) -> tuple[str, Stamp, str | None]:
        key = str(path)
        entry = self._entries.get(key)
        if key in self._unchanged:
            self._unchanged.discard(key)
            assert entry is not None
            return key, _stamp_of(entry), str(entry[3])
        stamp = self._stats.pop(key, None) or _stamp(os.stat(key))
        if self._matches(entry, stamp):
            assert entry is not None
            return key, stamp, str(entry[3])
        return key, stamp, None

    def known_format(self, path: str) -> str | None:
        """The image format sniffed earlier from the file at `path` (absolute), if it is unchanged since."""
        try:
            stamp = _stamp(os.stat(path))
        except OSError:
            return None  # the caller opens it and says why it cannot
        entry = self._entries.get(path)
        if not self._matches(entry, stamp):
            self._stats[path] = stamp
            return None
        assert entry is not None
        self._unchanged.add(path)  # a set, not its stamp: an unchanged tree of 50,000 photos holds no stamps
        return str(entry[4]) if len(entry) > 4 else None

    def note_format(self, path: str, fmt: str) -> None:
        """Remember the format sniffed from `path`, with its entry (now if it is fresh, else once hashed)."""
        entry = self._entries.get(path)
        if path in self._unchanged and entry is not None:
            self._entries[path] = (*entry[:4], sys.intern(fmt))
            self._dirty = True
        else:
            self._formats[path] = fmt

    def hash_many(self, paths: Iterable[Path], workers: int | None = None) -> dict[Path, str]:
        """Hashes of every path; cache misses are read in parallel (hashlib releases the GIL)."""
        result: dict[Path, str] = {}
        todo: list[tuple[Path, str, Stamp]] = []
        for path in dict.fromkeys(paths):
            key, stamp, known = self._fresh(path)
            if known is not None:
                result[path] = known
            else:
                todo.append((path, key, stamp))
        if todo:
            workers = workers or min(8, (os.cpu_count() or 2) + 1)
            if len(todo) == 1 or workers == 1:
                digests = [sha256_file(p) for p, _, _ in todo]
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    digests = list(pool.map(sha256_file, [p for p, _, _ in todo]))
            for (path, key, stamp), digest in zip(todo, digests, strict=True):
                fmt = self._formats.pop(key, None)
                self._entries[key] = (*stamp, digest) if fmt is None else (*stamp, digest, sys.intern(fmt))
                result[path] = digest
            self._dirty = True
        return result

    def hash(self, path: Path) -> str:
        return self.hash_many([path])[path]

    def save(self) -> None:
        """Write the cache if it changed (atomically; a lost cache only costs a re-read), and the manifest cache."""
        if self.parsed is not None:
            self.parsed.save()
        if self.cache_file is None or not self._dirty:
            return
        atomic_write(
            self.cache_file, json.dumps({"version": CACHE_VERSION, "entries": self._entries}, separators=(",", ":"))
        )
        self._dirty = False


def _stamp_of(entry: Entry) -> Stamp:
    return int(entry[0]), int(entry[1]), int(entry[2])


def _read_cache(cache_file: Path) -> dict[str, Entry]:
    """The cache's entries as tuples, their hashes and formats shared (`sys.intern`, as the state's are): one
    of each per file of a 50,000-photo tree costs a third less than JSON's lists. A malformed cache is empty."""
    try:
        data = json.loads(cache_file.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    intern = sys.intern
    try:
        return {key: (v[0], v[1], v[2], intern(v[3]), *map(intern, v[4:5])) for key, v in entries.items()}
    except (TypeError, IndexError, KeyError):
        return {}

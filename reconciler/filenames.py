"""Pure: the names a generation's files may have, checked before a name read from a record is used.

A sidecar (in an output folder or the outputs remote) and a shared state are written by others, so every file name,
path and hash read from them is checked here first: a file name is a plain image name (`<stem>-<n>.png`, `.jpg`,
`.jpeg`, `.webp`) or a sidecar's, with no separator, no `..`, nothing hidden or reserved; a path relative to the
project folder has only such parts; a hash is a sha256 (64 lowercase hex). Each check returns what is wrong, or None.
"""

from __future__ import annotations

import re

SIDECAR_SUFFIX = ".reconciler.json"
HISTORY = "history"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_NAME = 255
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)  # devices on Windows


def hash_problem(value: object) -> str | None:
    """What is wrong with a content hash read from a record (64 lowercase hex), or None."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        return f"{short(value)} is not a sha256 (64 hex digits)"
    return None


def name_problem(name: object, *, sidecar: bool = False) -> str | None:
    """What is wrong with a file name read from a record, or None: it must be a plain image name (or, with
    `sidecar`, a `.reconciler.json`): no separator, no `..`, not hidden, not reserved, not absolute."""
    if not isinstance(name, str) or not name:
        return f"{short(name)} is not a file name"
    if name.startswith(("/", "\\", "~")) or re.match(r"[A-Za-z]:", name):
        return f"{short(name)} is an absolute path, not a plain file name"
    if ".." in re.split(r"[/\\]", name):
        return f"{short(name)} climbs out of its folder (`..`), not a plain file name"
    if "/" in name or "\\" in name:
        return f"{short(name)} is a path, not a plain file name"
    if name in (".", "..") or name.startswith("."):
        return f"{short(name)} is a hidden or relative name"
    if len(name) > MAX_NAME or any(ord(c) < 32 or c in ':*?"<>|' for c in name) or _RESERVED.fullmatch(name):
        return f"{short(name)} is not a name reconciler writes (reserved or special characters)"
    suffixes = IMAGE_SUFFIXES + ((SIDECAR_SUFFIX,) if sidecar else ())
    if not name.lower().endswith(suffixes):
        return f"{short(name)} is not an image{' or sidecar' if sidecar else ''} file name"
    return None


def path_problem(path: object, *, folder: str | None = None, sidecar: bool = True) -> str | None:
    """What is wrong with a file's path relative to the project folder, as a state records it, or None: plain parts,
    `/`-separated, no `..`, nothing hidden; with `folder`, it must be `<folder>/<plain name>`."""
    problem = folder_problem(path, file=True)
    if problem is not None:
        return problem
    assert isinstance(path, str)
    parent, _, name = path.rpartition("/")
    if folder is not None and parent != folder:
        return f"{short(path)} is not in its output folder {folder}"
    return name_problem(name, sidecar=sidecar)


def folder_problem(path: object, *, file: bool = False) -> str | None:
    """What is wrong with a folder (or, with `file`, a file) path relative to the project folder, or None."""
    what = "file" if file else "folder"
    if not isinstance(path, str) or not path:
        return f"{short(path)} is not a {what} path"
    if path.startswith(("/", "~")) or "\\" in path or re.match(r"[A-Za-z]:", path):
        return f"{short(path)} is an absolute path"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"{short(path)} leaves its folder (an empty, `.` or `..` part)"
    if any(p.startswith(".") for p in parts):
        return f"{short(path)} is in a hidden folder"
    if any(len(p) > MAX_NAME or any(ord(c) < 32 for c in p) or _RESERVED.fullmatch(p) for p in parts):
        return f"{short(path)} has a reserved or special name"
    return None


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "…'"

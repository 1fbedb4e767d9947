"""Every write into an output folder goes through here: nothing there is ever overwritten.

Before bytes land on a path, a file already there with other content moves into that folder's history
(`<folder>/history/<first 12 hex of its own sha256>/<name>`), so paid images are never lost, whichever command
writes: apply's downloads, adopt, move, copy, and `pull`. A file already holding the very bytes is left as it is.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from reconciler.desired.hashing import sha256_file
from reconciler.filenames import HISTORY
from reconciler.files import atomic_write, fsync_dir


def make_room(dest: Path, keep: str | None = None) -> Path | None:
    """Move a file at `dest` aside into its folder's history unless it has the hash `keep`.

    Returns where it went (None: nothing was there, or it held `keep`). Idempotent: a file whose bytes are already
    in that history folder under its name is simply removed from `dest`."""
    if not dest.is_file():
        return None
    digest = sha256_file(dest)
    if digest == keep:
        return None
    folder = dest.parent / HISTORY / digest[:12]
    aside = folder / dest.name
    folder.mkdir(parents=True, exist_ok=True)
    if aside.is_file() and sha256_file(aside) == digest:
        dest.unlink()
    else:
        os.replace(dest, aside)
    fsync_dir(folder)
    fsync_dir(dest.parent)
    return aside


def place_bytes(dest: Path, data: bytes, sha256: str) -> tuple[bool, Path | None]:
    """Write `data` (which must have the hash `sha256`) to `dest` atomically, never over other content.

    Returns (written, displaced): written is False when `dest` already held these bytes; displaced is where a
    differing file that was there went."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"the bytes for {dest.name} do not have the hash {sha256[:12]}…: not written")
    if dest.is_file() and sha256_file(dest) == sha256:
        return False, None
    displaced = make_room(dest, sha256)
    atomic_write(dest, data)
    return True, displaced


def place_file(dest: Path, src: Path, sha256: str) -> tuple[bool, Path | None]:
    """Copy `src` to `dest` (hash-checked: `src` must still have `sha256`), never over other content."""
    if dest.resolve() == src.resolve():
        if sha256_file(src) != sha256:
            raise ValueError(f"{src.name} changed since it was recorded: not copied")
        return False, None
    return place_bytes(dest, src.read_bytes(), sha256)

"""Local files: the one atomic write, the one way to show a path, and clean-up after a kill.

Every file reconciler writes (state, saved plans, sidecars, images, the hash cache) goes through
`atomic_writer`: a temporary file beside the target, fsynced, renamed over it, and the folder fsynced, so a
kill at any instant leaves the old file or the new one whole, never a torn one. Temporary files are named
`.<name>.<random>.part`; `remove_partials` clears the ones a killed process left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PART_SUFFIX = ".part"


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide and writes run in threads


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: some filesystems refuse fsync on a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, backup: Path | None = None, mode: int | None = None, durable: bool = True
) -> Iterator[BinaryIO]:
    """Write `path` atomically: yields a binary file; on a clean exit it is fsynced and renamed over `path`.

    `backup`: the current file (if any) is first hard-linked there, atomically, so the previous version
    survives. `mode`: the new file's permissions (default: 0o666 minus the umask, like any new file).
    `durable=False` skips the fsyncs, for files that are rebuilt from others when lost (the gallery's pages
    and thumbnails): still never torn for a reader, but a power loss may leave them empty.
    On an exception the temporary file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_UMASK)
        if backup is not None and path.exists():
            link = backup.with_name(f".{backup.name}.{os.getpid()}{PART_SUFFIX}")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, backup)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str, *, backup: Path | None = None, durable: bool = True) -> None:
    """Replace `path` with `data` (str is written as UTF-8) atomically and (unless `durable=False`) durably;
    see `atomic_writer`."""
    with atomic_writer(path, backup=backup, durable=durable) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def remove_partials(path: Path) -> None:
    """Remove the temporary files of writes to `path` that a killed process left behind.

    Only call it while holding the state lock: then no other reconciler is writing `path` now.
    """
    if not path.parent.is_dir():
        return
    prefix = f".{path.name}."
    for entry in os.scandir(path.parent):
        if entry.name.startswith(prefix) and entry.name.endswith(PART_SUFFIX):
            Path(entry.path).unlink(missing_ok=True)


def display_path(path: Path | str, root: Path | str) -> str:
    """How a path is shown to the user: relative to the project folder `root` when inside it (`.` for the
    folder itself), as given otherwise; always with `/`. String work only: it runs once per image."""
    text, base = os.fspath(path), os.fspath(root).rstrip(os.sep)
    if text == base:
        return "."
    if text.startswith(base + os.sep):
        text = text[len(base) + 1 :]
    return text.replace(os.sep, "/")

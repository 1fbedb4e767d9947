"""The gallery's edge: hash the images (through the stat cache), make missing thumbnails, write changed pages.

Thumbnails are JPEGs named by the content hash of their image, made once with Pillow (in parallel threads)
and kept in `<gallery>/thumbs/` while an image of the state has that content; a rebuild with nothing new only
stats the images and compares the pages it would write with those on disk, so it writes nothing.
`serve_gallery` shows it on loopback.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reconciler.desired.hashing import HashCache
from reconciler.files import atomic_write, display_path
from reconciler.present.gallery.html import THUMBS, render
from reconciler.present.gallery.model import THUMB_SUFFIX, build, image_paths, thumb_name
from reconciler.state import State
from reconciler.text import plural

THUMB_SIZE = 384  # px, the longest side: sharp in a 240 px grid cell on a 1.5x screen


@dataclass(frozen=True)
class GalleryResult:
    folder: Path
    index: Path
    images: int  # current images shown
    pages: int
    written: int  # files written this time (pages and thumbnails)
    thumbnails: int  # thumbnails made this time
    unreadable: int  # images Pillow could not read (shown as such)
    seconds: float
    root: Path

    def summary(self) -> str:
        made = f", {plural(self.thumbnails, 'new thumbnail')}" if self.thumbnails else ""
        bad = f", {self.unreadable} unreadable" if self.unreadable else ""
        return (
            f"Gallery: {display_path(self.index, self.root)} ({plural(self.images, 'image')}, "
            f"{plural(self.pages, 'page')}{made}{bad})."
        )


def build_gallery(
    root: Path, state: State, out: Path, cache: HashCache, *, workers: int | None = None
) -> GalleryResult:
    """Write the gallery of `state` into `out`; only what changed is written."""
    began = time.monotonic()
    on_disk = [root / path for path in image_paths(state) if (root / path).is_file()]
    hashes = cache.hash_many(on_disk) if on_disk else {}
    cache.save()
    present = {display_path(path, root): digest for path, digest in hashes.items()}
    thumbs = out / THUMBS
    needed = {digest: root / path for path, digest in present.items()}
    todo = [(src, thumbs / thumb_name(digest)) for digest, src in sorted(needed.items())]
    todo = [(src, dst) for src, dst in todo if not _usable(dst)]
    failed = _make_thumbnails(todo, workers)
    unreadable = {digest for digest, src in needed.items() if src in failed}
    gallery = build(state, present, root.name or "reconciler", unreadable)
    project = os.path.relpath(root, out).replace(os.sep, "/")
    files = render(gallery, project)
    written = len(todo) - len(failed)
    for rel, text in files.items():
        written += _write_if_changed(out / rel, text.encode("utf-8"))
    _remove_stale(out, set(files), {thumb_name(digest) for digest in needed})
    return GalleryResult(
        folder=out,
        index=out / "index.html",
        images=gallery.images,
        pages=sum(1 for rel in files if rel.endswith(".html")),
        written=written,
        thumbnails=len(todo) - len(failed),
        unreadable=len(unreadable),
        seconds=time.monotonic() - began,
        root=root,
    )


def _usable(thumb: Path) -> bool:
    """A thumbnail made before (not an empty file a power loss left behind)."""
    try:
        return thumb.stat().st_size > 0
    except OSError:
        return False


def _make_thumbnails(todo: list[tuple[Path, Path]], workers: int | None) -> set[Path]:
    """Make each thumbnail (Pillow releases the GIL while decoding and resizing); returns the unreadable."""
    if not todo:
        return set()
    workers = workers or min(8, (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _thumbnail(*job), todo))
    return {src for (src, _), ok in zip(todo, results, strict=True) if not ok}


def _thumbnail(src: Path, dst: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(src) as image:
            image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at a reduced size, much faster
            image.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX, reducing_gap=2.0)  # area average
            rgb = image.convert("RGB")
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=82)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    atomic_write(dst, buffer.getvalue(), durable=False)  # a cache: rebuilt when lost
    return True


def _write_if_changed(path: Path, data: bytes) -> int:
    try:
        if path.read_bytes() == data:
            return 0
    except OSError:
        pass
    atomic_write(path, data, durable=False)  # rebuilt from the state by the next build
    return 1


def _remove_stale(out: Path, pages: set[str], thumbnails: set[str]) -> None:
    """Pages of generations no longer in the state, and thumbnails of images no page shows any more."""
    for folder in ("g", "m"):
        base = out / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.html")):
            if path.relative_to(out).as_posix() not in pages:
                path.unlink(missing_ok=True)
    thumbs = out / THUMBS
    if thumbs.is_dir():
        for entry in os.scandir(thumbs):
            if entry.name.endswith(THUMB_SUFFIX) and entry.name not in thumbnails:
                Path(entry.path).unlink(missing_ok=True)


def serve_gallery(root: Path, out: Path, port: int, ready: Callable[[str], None]) -> None:
    """Serve the project folder on 127.0.0.1 (the pages link to the images in it) until Ctrl-C."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        host, bound = server.server_address[:2]
        ready(f"http://{host!s}:{bound}/{display_path(out / 'index.html', root)}")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

"""Image files on disk: glob/folder/file expansion, png/jpeg/webp sniffing by magic bytes, sidecar captions,
project containment. Reads one small header per image and caches everything by resolved path."""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.files import display_path
from reconciler.load.imagetype import FORMATS, HEAD_BYTES, ImageFormat, sniff
from reconciler.text import plural

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
SKIPPED_SUFFIXES = frozenset({".heic", ".heif", ".avif"})  # photos a phone takes, that Novita does not accept
MAX_CAPTION = 1024
MAX_INIT_BYTES = 10 * 1024 * 1024
MAX_INIT_PIXELS = 16 * 1024 * 1024


def _what_else(head: bytes) -> str:
    """Why a file is not accepted, phrased to follow its name."""
    accepted = "Novita accepts png, jpeg and webp"
    if not head:
        return "is empty"
    for prefixes, name in (
        ((b"GIF87a", b"GIF89a"), "GIF"),
        ((b"BM",), "BMP"),
        ((b"II*\x00", b"MM\x00*"), "TIFF"),
    ):
        if head.startswith(prefixes):
            return f"is a {name} image by its content; {accepted}"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return f"is a HEIC/AVIF image by its content; {accepted}"
    return "is not a png, jpeg or webp image (checked by its content, not its name)"


@dataclass(frozen=True, slots=True)  # one per photo: no __dict__ each
class Found:
    """An image file found on disk."""

    path: Path  # absolute, symlinks resolved
    display: str  # relative to the project folder
    format: ImageFormat
    sidecar: str | None  # the caption from <stem>.txt beside it (stripped), or None


@dataclass(frozen=True)
class _Entry:
    is_file: bool
    is_symlink: bool


_ENTRIES = {(f, s): _Entry(f, s) for f in (False, True) for s in (False, True)}  # one of each, shared
_SNIFFED: dict[str, tuple[ImageFormat | None, str]] = {f: (f, "") for f in FORMATS}  # a file's sniff, shared


class KnownFormats(Protocol):
    """Image formats sniffed by an earlier run, trusted while the file is unchanged (the stat cache)."""

    def known_format(self, path: str) -> str | None: ...

    def note_format(self, path: str, fmt: str) -> None: ...


class ImageFinder:
    """Finds images for manifests under one project folder; caches listings, sniffs and captions."""

    def __init__(self, project_root: Path, known: KnownFormats | None = None) -> None:
        self.known = known
        self.root = project_root.resolve()
        self._root_str = str(self.root)
        self._prefix = self._root_str.rstrip(os.sep) + os.sep
        self._listings: dict[str, dict[str, _Entry] | None] = {}
        self._resolved_dirs: dict[str, Path] = {}
        self._shown_dirs: dict[str, str] = {}  # a folder's display, with a trailing /
        self._sniffed: dict[str, tuple[ImageFormat | None, str]] = {}
        self._captions: dict[str, tuple[str | None, str | None]] = {}  # by the sidecar's path
        self.notes: list[str] = []  # what a folder entry skipped and why, taken by the loader after each entry

    def forget_files(self) -> None:
        """Let go of the listings, sniffs and captions cached so far (the loader calls it after each Dataset):
        what is held while loading grows with the largest dataset, not with every photo of the project."""
        self._listings.clear()
        self._sniffed.clear()
        self._captions.clear()

    # -- paths -------------------------------------------------------------------------------------
    def inside(self, resolved: Path) -> bool:
        text = str(resolved)
        return text == self._root_str or text.startswith(self._prefix)

    def display(self, path: Path) -> str:
        return display_path(path, self._root_str)

    def _in_folder(self, folder: Path, name: str) -> str:
        """display(folder / name), the folder's part worked out once."""
        key = str(folder)
        shown = self._shown_dirs.get(key)
        if shown is None:
            shown = self.display(folder)
            shown = self._shown_dirs[key] = "" if shown in (".", "") else shown + "/"
        return shown + name

    def _outside(self, given: str, resolved: Path, link: bool) -> str:
        how = " through a symlink" if link else ""
        return f"`{given}` resolves{how} to {resolved}, outside the project folder {self.root}"

    def _listing(self, folder: Path) -> dict[str, _Entry] | None:
        key = str(folder)
        if key not in self._listings:
            try:
                with os.scandir(folder) as entries:
                    self._listings[key] = {
                        e.name: _ENTRIES[e.is_file(), e.is_symlink()] for e in entries if not e.is_dir()
                    }
            except OSError:
                self._listings[key] = None
        return self._listings[key]

    def _resolve_dir(self, folder: Path) -> Path:
        key = str(folder)
        if key not in self._resolved_dirs:
            self._resolved_dirs[key] = folder.resolve()
        return self._resolved_dirs[key]

    # -- one file ----------------------------------------------------------------------------------
    def _sniff(self, resolved: Path) -> tuple[ImageFormat | None, str]:
        """(format, problem): one read of the first bytes, or none while the stat cache knows the file."""
        key = str(resolved)
        if key not in self._sniffed:
            known = self.known.known_format(key) if self.known is not None else None
            if known is not None and known in _SNIFFED:
                self._sniffed[key] = _SNIFFED[known]
                return self._sniffed[key]
            try:
                with open(resolved, "rb") as handle:
                    head = handle.read(HEAD_BYTES)
            except OSError as exc:
                self._sniffed[key] = (None, f"cannot be read: {exc.strerror or exc}")
            else:
                fmt = sniff(head)
                problem = "" if fmt else _what_else(head)
                self._sniffed[key] = _SNIFFED[fmt] if fmt else (None, problem)
                if fmt is not None and self.known is not None:
                    self.known.note_format(key, fmt)
        return self._sniffed[key]

    def _sidecar(self, sidecar: Path) -> tuple[str | None, str | None]:
        """(caption, problem) from a sidecar .txt known to exist."""
        key = str(sidecar)
        if key not in self._captions:
            caption: str | None = None
            problem: str | None = None
            try:
                text = sidecar.read_bytes().decode("utf-8-sig").strip()
            except UnicodeDecodeError as exc:
                problem = f"caption file {self.display(sidecar)} is not UTF-8 (byte {exc.start})"
            except OSError as exc:
                problem = f"cannot read caption file {self.display(sidecar)}: {exc.strerror or exc}"
            else:
                if len(text) > MAX_CAPTION:
                    problem = (
                        f"caption in {self.display(sidecar)} is {len(text)} characters; "
                        f"Novita accepts at most {MAX_CAPTION}"
                    )
                caption = text or None
            self._captions[key] = (caption, problem)
        return self._captions[key]

    def _found(self, folder: Path, name: str, entry: _Entry, given: str, problems: list[str]) -> Found | None:
        """An image file `name` in the resolved `folder` (listed as `entry`)."""
        if entry.is_symlink:
            resolved = (folder / name).resolve()
            if not self.inside(resolved):
                problems.append(self._outside(given, resolved, True))
                return None
            display = self.display(resolved)
        else:
            resolved = folder / name  # `folder` is resolved and inside: so is a plain file in it
            display = self._in_folder(folder, name)
        fmt, problem = self._sniff(resolved)
        if fmt is None:
            problems.append(f"{self._in_folder(folder, name)} {problem}")
            return None
        caption: str | None = None
        listing = self._listing(folder)
        stem = name.rsplit(".", 1)[0] if "." in name else name
        side = listing.get(stem + ".txt") if listing else None
        if side is not None and side.is_file:
            caption, side_problem = self._sidecar(folder / (stem + ".txt"))
            if side_problem:
                problems.append(side_problem)
        return Found(resolved, display, fmt, caption)

    # -- manifest entries --------------------------------------------------------------------------
    def expand(self, base: Path, given: str) -> tuple[list[Found], list[str]]:
        """The images of one `images:` entry (glob, folder or file) relative to folder `base`."""
        problems: list[str] = []
        if not given.strip():
            return [], ["empty path"]
        if "*" in given or "?" in given:
            return self._glob(base, given, problems), problems
        path = base / given
        resolved = path.resolve()
        if not self.inside(resolved):
            return [], [self._outside(given, resolved, _has_link(base, given, resolved))]
        if resolved.is_dir():
            found = self._folder(resolved, given, problems)
            if not found and not problems:
                problems.append(f"folder `{given}` holds no .png, .jpg, .jpeg or .webp file")
            return found, problems
        if not resolved.exists():
            return [], [f"`{given}`: no such file or folder ({self.display(resolved)})"]
        folder, name = resolved.parent, resolved.name
        image = self._found(folder, name, _Entry(True, False), given, problems)
        # a sidecar sits beside the name as given, which may be a symlink elsewhere
        if image is not None and path.name != name:
            image = self._with_link_sidecar(image, path, problems)
        return ([image] if image else []), problems

    def _with_link_sidecar(self, image: Found, path: Path, problems: list[str]) -> Found:
        sidecar = path.with_name(path.name.rsplit(".", 1)[0] + ".txt")
        if sidecar.is_file():
            caption, problem = self._sidecar(sidecar.resolve())
            if problem:
                problems.append(problem)
            return Found(image.path, image.display, image.format, caption)
        return image

    def _folder(self, folder: Path, given: str, problems: list[str]) -> list[Found]:
        listing = self._listing(folder)
        if listing is None:
            problems.append(f"cannot list folder `{given}`")
            return []
        found: list[Found] = []
        skipped = [n for n in sorted(listing) if os.path.splitext(n)[1].lower() in SKIPPED_SUFFIXES]
        if skipped:
            more = f" and {len(skipped) - 2} more" if len(skipped) > 2 else ""
            self.notes.append(
                f"skipped {plural(len(skipped), 'file')} in folder `{given}` ({', '.join(skipped[:2])}{more}): "
                "HEIC/HEIF/AVIF images are not accepted by Novita; convert them to JPEG or PNG to train on them"
            )
        for name in sorted(listing):
            entry = listing[name]
            if entry.is_file and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                image = self._found(folder, name, entry, given, problems)
                if image is not None:
                    found.append(image)
        return found

    def _glob(self, base: Path, given: str, problems: list[str]) -> list[Found]:
        try:
            matches = self._matches(base, given)
        except (OSError, ValueError) as exc:
            problems.append(f"cannot expand `{given}`: {exc}")
            return []
        found: list[Found] = []
        outside: list[str] = []
        folders: dict[str, tuple[Path, bool]] = {}  # head of a match → (its folder resolved, inside the project)
        for head, name in matches:
            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            if head not in folders:  # one resolve per folder, not per file
                folder = self._resolve_dir(base / head) if head else self._resolve_dir(base)
                folders[head] = (folder, self.inside(folder))
            folder, folder_inside = folders[head]
            listing = self._listing(folder)
            entry = listing.get(name) if listing else None
            if entry is None or not entry.is_file:
                continue
            if not folder_inside:
                outside.append(os.path.join(head, name))
                continue
            given_as = os.path.join(head, name) if entry.is_symlink else ""  # only a symlink's message says it
            image = self._found(folder, name, entry, given_as, problems)
            if image is not None:
                found.append(image)
        if outside:
            more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
            problems.append(f"`{given}` matches files outside the project folder {self.root}: {outside[0]}{more}")
        elif not found and not problems:
            problems.append(f"`{given}` matches no .png, .jpg, .jpeg or .webp file (extensions match in any case)")
        return found

    def _matches(self, base: Path, given: str) -> list[tuple[str, str]]:
        """(folder as written, name) of each path the glob `given` matches from `base`, sorted: what
        `glob.glob(given, root_dir=base, recursive=True)` gives. When only the last part has a wildcard (the
        usual `photos/*.jpg`), it is matched against the folder's listing, listed once for every pattern."""
        pattern = any_case_extension(given)
        head, tail = os.path.split(pattern)
        if glob.has_magic(head) or not glob.has_magic(tail) or tail == "**":
            matches = sorted(set(glob.glob(pattern, root_dir=base, recursive=True)))
            return [os.path.split(match) for match in matches]
        try:
            folder = self._resolve_dir(base / head) if head else self._resolve_dir(base)
        except RuntimeError:  # a symlink loop: glob finds nothing in it either
            return []
        listing = self._listing(folder)
        if not listing:
            return []
        names = listing if tail.startswith(".") else [name for name in listing if not name.startswith(".")]
        return [(head, name) for name in sorted(fnmatch.filter(names, tail))]

    def init_image(self, base: Path, given: str) -> tuple[Found | None, list[str]]:
        """An img2img init image: one png/jpeg/webp file, at most 10 MB and 16 megapixels."""
        if not given.strip():
            return None, ["empty path"]
        path = base / given
        resolved = path.resolve()
        if not self.inside(resolved):
            return None, [self._outside(given, resolved, _has_link(base, given, resolved))]
        if resolved.is_dir():
            return None, [f"`{given}` is a folder; init_image needs one image file"]
        if not resolved.exists():
            return None, [f"`{given}`: no such file ({self.display(resolved)})"]
        fmt, problem = self._sniff(resolved)
        if fmt is None:
            return None, [f"{self.display(resolved)} {problem}"]
        size = resolved.stat().st_size
        if size > MAX_INIT_BYTES:
            return None, [f"{self.display(resolved)} is {size / 1048576:.1f} MB; Novita accepts at most 10 MB"]
        pixels = _pixels(resolved)
        if pixels is None:
            return None, [f"{self.display(resolved)}: cannot read the image size from its header"]
        width, height = pixels
        if width * height > MAX_INIT_PIXELS:
            return None, [
                f"{self.display(resolved)} is {width}×{height} ({width * height / 1e6:.1f} megapixels); "
                "Novita accepts at most 16 megapixels"
            ]
        return Found(resolved, self.display(resolved), fmt, None), []

    def output_dir(self, base: Path, given: str) -> tuple[Path | None, list[str]]:
        """An output folder: may not exist yet, must resolve inside the project folder."""
        if not given.strip():
            return None, ["empty path"]
        resolved = self._resolve_in(base, given)
        if not self.inside(resolved):
            return None, [self._outside(given, resolved, _has_link(base, given, resolved))]
        if resolved.exists() and not resolved.is_dir():
            return None, [f"`{given}` exists and is not a folder"]
        return resolved, []

    def _resolve_in(self, base: Path, given: str) -> Path:
        """`(base / given).resolve()`, resolving the parent folder once for all the names in it."""
        head, name = os.path.split(given)
        if name in ("", ".", ".."):
            return (base / given).resolve()
        folder = self._resolve_dir(base / head if head else base)
        return (folder / name).resolve() if os.path.islink(os.path.join(folder, name)) else folder / name


def any_case_extension(pattern: str) -> str:
    """`photos/*.jpg` → `photos/*.[jJ][pP][gG]`: a glob's image extension matches IMG_0001.JPG as well."""
    stem, dot, extension = pattern.rpartition(".")
    if not dot or f".{extension.lower()}" not in IMAGE_SUFFIXES or not extension.isalpha():
        return pattern
    return f"{stem}." + "".join(f"[{c.lower()}{c.upper()}]" for c in extension)


def _has_link(base: Path, given: str, resolved: Path) -> bool:
    """Whether `given` escapes through a symlink rather than lexically (for the message only)."""
    lexical = Path(os.path.normpath(base.resolve() / given))
    return lexical != resolved


def _pixels(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image header, without decoding the pixels."""
    import warnings

    from PIL import Image  # imported only when an init image is checked

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError:
        return (1 << 16, 1 << 16)  # far beyond any limit; the caller reports it as too large
    except (OSError, ValueError):
        return None

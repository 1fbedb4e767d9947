"""The outputs remote: every generated image by content hash, with its generation's sidecar, in any fsspec store.

The only module that talks to the outputs remote (`s3://`, `gs://`, `az://`, `file:///...`; the object-store
backends are extras: `pip install 'reconciler[s3]'`). Credentials come from the store's own chain (AWS_*
variables, profiles, instance roles, ...) and are never written anywhere. Layout under the remote's URL, like
DVC's cache:

    files/sha256/<first 2 hex>/<other 62 hex>      an image's bytes, named by their sha256 (written once)
    generations/<name>/<identity>.json              the sidecar of the run of Generation/<name> with that
                                                    identity: request, seed, task id, each image's file
                                                    name and sha256 (a `/` or `%` in a matrix member's
                                                    name is written %2F or %25)

Content-addressed objects are never overwritten or deleted by reconciler: a replaced generation's previous
images stay (its history is just more hashes). A plan reads the remote with two listings (`index`), not one
request per image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, RemoteError
from reconciler.files import atomic_write
from reconciler.desired.hashing import HashCache, sha256_file
from reconciler.outputs.folders import SIDECAR_SUFFIX
from reconciler.outputs.place import place_bytes
from reconciler.state import GenerationEntry
from reconciler.urls import redact_url_password

FILES = "files/sha256"
GENERATIONS = "generations"
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AZURE_STORAGE_KEY")


def key_part(name: str) -> str:
    """A generation's name as one part of a key: a matrix member swept over a string may hold a `/`
    (`x[prompt="a/b"]`), which would split it in two."""
    return name.replace("%", "%25").replace("/", "%2F")


def name_of_key_part(part: str) -> str:
    return re.sub("%(25|2F)", lambda m: chr(int(m[1], 16)), part)


@dataclass(frozen=True)
class RemoteIndex:
    """What the remote holds, from two listings: image hashes, and (generation name, identity) sidecars."""

    hashes: frozenset[str] = frozenset()
    sidecars: frozenset[tuple[str, str]] = frozenset()
    listings: int = 0

    def identities(self, name: str) -> list[str]:
        return sorted(i for n, i in self.sidecars if n == name)


@dataclass
class OutputsRemote:
    """One outputs remote; `setting` says where its URL came from, for messages."""

    url: str
    setting: str = "outputs.remote"
    _fs: Any = field(default=None, repr=False)
    _root: str = ""
    _known: set[str] | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        return redact_url_password(self.url)

    def _error(self, what: str, exc: BaseException) -> RemoteError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        for name in SECRET_VARIABLES:  # an object store's error text never carries these, but make sure
            value = os.environ.get(name)
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        return RemoteError(f"{self.setting} {self.shown}: {what}: {text}")

    @property
    def fs(self) -> Any:
        if self._fs is None:
            scheme = self.url.partition("://")[0].lower() if "://" in self.url else "file"
            try:
                import fsspec
            except ImportError:
                raise ConfigError(
                    f"{self.setting} {self.shown}: an outputs remote needs fsspec: pip install 'reconciler[s3]' "
                    "(or [gcs], [azure])"
                ) from None
            try:
                fs, root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, use_listings_cache=False)
            except ValueError as exc:
                if "Protocol not known" in str(exc):
                    raise ConfigError(
                        f"{self.setting} {self.shown}: unknown scheme {scheme}://; use s3://, gs://, az:// or "
                        "file:///path"
                    ) from None
                raise ConfigError(f"{self.setting} {self.shown}: not a usable URL: {exc}") from None
            except ImportError:
                extra = EXTRAS.get(scheme, scheme)
                raise ConfigError(
                    f"{self.setting} {self.shown}: {scheme}:// needs an extra package: "
                    f"pip install 'reconciler[{extra}]'"
                ) from None
            self._fs, self._root = fs, root.rstrip("/")
        return self._fs

    @property
    def local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def _path(self, *parts: str) -> str:
        self.fs  # noqa: B018 - resolves the root
        return "/".join([self._root, *parts])

    def image_key(self, sha256: str) -> str:
        return self._path(FILES, sha256[:2], sha256[2:])

    def sidecar_key(self, name: str, identity: str) -> str:
        return self._path(GENERATIONS, key_part(name), f"{identity}.json")

    # ------------------------------------------------------------------------------------------ read

    def index(self) -> RemoteIndex:
        """Two recursive listings: the image hashes and the sidecars (the hashes are kept for `store_run`)."""
        hashes = {
            parts[-2] + parts[-1]
            for path in self._find(self._path(FILES))
            if len(parts := path.rsplit("/", 2)) == 3 and len(parts[-2]) == 2 and len(parts[-1]) == 62
        }
        sidecars = set()
        for path in self._find(self._path(GENERATIONS)):
            parts = path.rsplit("/", 2)
            if len(parts) == 3 and parts[2].endswith(".json"):
                sidecars.add((name_of_key_part(parts[1]), parts[2].removesuffix(".json")))
        self._known = set(hashes)
        return RemoteIndex(frozenset(hashes), frozenset(sidecars), listings=2)

    def _find(self, path: str) -> list[str]:
        try:
            if self.local and not os.path.isdir(self._root):
                raise FileNotFoundError(f"no folder {self._root}")
            return [str(p) for p in self.fs.find(path)]
        except FileNotFoundError as exc:
            raise self._error("cannot list it (does the bucket or folder exist?)", exc) from None
        except (OSError, PermissionError) as exc:
            raise self._error("cannot list it", exc) from None

    def read_sidecar(self, name: str, identity: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.fs.cat_file(self.sidecar_key(name, identity)))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise self._error(f"cannot read the sidecar of Generation/{name}", exc) from None
        return data if isinstance(data, dict) and isinstance(data.get("images"), list) else None

    def fetch(self, sha256: str, dest: Path) -> Path | None:
        """Write the image with this hash to `dest` (atomically), after checking its bytes have that hash; a
        differing file there first moves to its folder's history (returned: where it went)."""
        try:
            data = self.fs.cat_file(self.image_key(sha256))
        except OSError as exc:
            raise self._error(f"cannot fetch image {sha256[:12]}", exc) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RemoteError(
                f"{self.setting} {self.shown}: the object for image {sha256[:12]}… does not have that hash "
                "(damaged in the store); it was not written"
            )
        return place_bytes(dest, data, sha256)[1]

    # ------------------------------------------------------------------------------------------ write

    def store(self, path: Path, sha256: str, known: frozenset[str] | set[str] = frozenset()) -> bool:
        """Store a local image under its hash (unless the remote already has it). True if it was sent."""
        if sha256 in known:
            return False
        self._put(self.image_key(sha256), path.read_bytes())
        if self._known is not None:
            self._known.add(sha256)
        return True

    def store_sidecar(self, name: str, identity: str, record: dict[str, Any]) -> None:
        text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        self._put(self.sidecar_key(name, identity), text.encode())

    def _put(self, key: str, data: bytes) -> None:
        try:
            if self.local:  # a shared folder: a reader never sees a half-written file
                atomic_write(Path(key), data)
            else:
                self.fs.pipe_file(key, data)
        except OSError as exc:
            raise self._error("cannot store in it", exc) from None

    # ------------------------------------------------------------------------------------------ a generation

    def store_run(self, name: str, identity: str, files: list[tuple[Path, str]], record: dict[str, Any]) -> int:
        """Store a finished run: its images by hash (those the remote lacks), then its sidecar. Returns how many
        images were sent. The sidecar goes last, so a sidecar in the remote always has its images there."""
        known = self.known_hashes()
        sent = sum(self.store(path, sha256, known) for path, sha256 in files)
        self.store_sidecar(name, identity, record)
        return sent

    def known_hashes(self) -> frozenset[str]:
        """The hashes the remote holds (one listing), cached for this command: they are never deleted."""
        if self._known is None:
            self._known = set(self.index().hashes)
        return frozenset(self._known)

    def pull_run(self, entry: GenerationEntry, root: Path, cache: HashCache | None = None) -> int:
        """Write the images of a finished run that are missing or changed here from the remote (hash-checked),
        and its sidecar. Returns how many images were written."""
        written = 0
        for record in entry.files:
            dest = inside(root, record.path)
            if dest.is_file() and (cache.hash(dest) if cache else sha256_file(dest)) == record.sha256:
                continue
            self.fetch(record.sha256, dest)
            written += 1
        if entry.output:
            try:
                data = self.fs.cat_file(self.sidecar_key(entry.name, entry.identity))
            except FileNotFoundError:
                data = None
            except OSError as exc:
                raise self._error(f"cannot read the sidecar of Generation/{entry.name}", exc) from None
            if data is not None:
                atomic_write(inside(root, f"{entry.output}/{entry.stem}{SIDECAR_SUFFIX}"), data)
        return written + self._pull_history(entry, root, cache)

    def _pull_history(self, entry: GenerationEntry, root: Path, cache: HashCache | None) -> int:
        """The images (and sidecars) of the runs a generation replaced, where the remote holds them: the history
        is the team's, not only the machine's that moved it aside."""
        written = 0
        known = self.known_hashes()
        for record in entry.history:
            for file in record.files:
                dest = inside(root, file.path)
                intact = dest.is_file() and (cache.hash(dest) if cache else sha256_file(dest)) == file.sha256
                if not intact and file.sha256 in known:
                    self.fetch(file.sha256, dest)
                    written += 1
            side = record.sidecar
            if side is not None and not inside(root, side.path).is_file():
                try:
                    data = self.fs.cat_file(self.sidecar_key(entry.name, record.identity))
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise self._error(f"cannot read a sidecar of Generation/{entry.name}", exc) from None
                if hashlib.sha256(data).hexdigest() == side.sha256:
                    atomic_write(inside(root, side.path), data)
        return written

    def push_run(self, entry: GenerationEntry, root: Path) -> int:
        """Store a run whose images are here but not in the remote (a remote configured after the fact)."""
        sidecar = inside(root, f"{entry.output}/{entry.stem}{SIDECAR_SUFFIX}") if entry.output else None
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar is not None else None
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("identity") != entry.identity:
            record = {
                "generation": entry.name,
                "identity": entry.identity,
                "task_id": entry.task_id,
                "request": entry.request,
                "seed": entry.seed,
                "images": [{"file": Path(f.path).name, "sha256": f.sha256} for f in entry.files],
            }
        files = [(inside(root, f.path), f.sha256) for f in entry.files]
        return self.store_run(entry.name, entry.identity, files, record)


def inside(root: Path, relative: str) -> Path:
    """`root / relative`, refusing a path that leaves the project (a state can be pushed from anywhere)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise RemoteError(f"{relative}: the state names a file outside the project folder; it was not written")
    return path

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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.desired.hashing import HashCache, sha256_file
from reconciler.errors import ConfigError, RemoteError
from reconciler.files import atomic_write
from reconciler.outputs.guard import inside_output
from reconciler.outputs.place import place_bytes
from reconciler.outputs.sidecar import MAX_BYTES, BadSidecar, Sidecar, parse, read_local, sidecar_name
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

    def shown_key(self, name: str, identity: str) -> str:
        """A sidecar's object as messages name it: under the remote's URL, any password hidden."""
        return "/".join([self.shown.rstrip("/"), GENERATIONS, key_part(name), f"{identity}.json"])

    def _shown_image(self, sha256: str) -> str:
        return "/".join([self.shown.rstrip("/"), FILES, sha256[:2], sha256[2:]])

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
        except Exception as exc:  # OSError, or the store library's own (botocore's EndpointConnectionError)
            raise self._error("cannot list it", exc) from None

    def read_sidecar(self, name: str, identity: str) -> Sidecar | None:
        """The sidecar of that run, checked (BadSidecar says what is wrong); None when the remote has none."""
        raw = self._sidecar_bytes(name, identity)
        return parse(raw, generation=name, identity=identity) if raw is not None else None

    def _sidecar_bytes(self, name: str, identity: str) -> bytes | None:
        key = self.sidecar_key(name, identity)
        try:  # one request, and never more than a sidecar can be: a larger one is refused by `parse`
            return bytes(self.fs.cat_file(key, start=0, end=MAX_BYTES + 1))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(f"cannot read the sidecar of Generation/{name}", exc) from None

    def fetch(self, sha256: str) -> bytes:
        """The bytes of the image with this hash, checked to have it (RemoteError naming the object if not)."""
        try:
            data = bytes(self.fs.cat_file(self.image_key(sha256)))
        except OSError as exc:
            raise self._error(f"cannot fetch image {sha256[:12]}", exc) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RemoteError(
                f"the outputs remote's object {self._shown_image(sha256)} does not hash to its name (damaged or "
                "replaced in the store); it was not written"
            )
        return data

    def fetch_to(self, sha256: str, dest: Path) -> Path | None:
        """Write the image with this hash to `dest` (hash-checked, atomically); a differing file there first moves
        to its folder's history (returned: where it went). Nothing is ever overwritten."""
        return place_bytes(dest, self.fetch(sha256), sha256)[1]

    # ------------------------------------------------------------------------------------------ write

    def store(self, path: Path, sha256: str, known: frozenset[str] | set[str] = frozenset()) -> bool:
        """Store a local image under its hash (unless the remote already has it). True if it was sent."""
        if sha256 in known:
            return False
        self._put(self.image_key(sha256), path.read_bytes())
        if self._known is not None:
            self._known.add(sha256)
        return True

    def store_sidecar(self, name: str, identity: str, record: Sidecar) -> None:
        self._put(self.sidecar_key(name, identity), record.to_json().encode())

    def _put(self, key: str, data: bytes) -> None:
        try:
            if self.local:  # a shared folder: a reader never sees a half-written file
                atomic_write(Path(key), data)
            else:
                self.fs.pipe_file(key, data)
        except Exception as exc:  # OSError, or the store library's own (a network, credentials, a full bucket)
            raise self._error("cannot store in it", exc) from None

    # ------------------------------------------------------------------------------------------ a generation

    def store_run(self, name: str, identity: str, files: list[tuple[Path, str]], record: Sidecar) -> int:
        """Store a finished run: its images by hash (those the remote lacks), then its sidecar. Returns how many
        images were sent. The sidecar goes last, so a sidecar in the remote always has its images there."""
        sent = 0
        try:
            known = self.known_hashes()
            for path, sha256 in files:
                sent += self.store(path, sha256, known)
            self.store_sidecar(name, identity, record)
        except RemoteError as exc:
            stored = set(self._known or ())
            waiting = [path.name for path, sha256 in files if sha256 not in stored] or ["its sidecar"]
            raise RemoteError(
                f"{exc}; not stored yet: {', '.join(waiting)} (kept on disk; the next apply stores them, "
                "nothing is generated again)"
            ) from None
        return sent

    def known_hashes(self) -> frozenset[str]:
        """The hashes the remote holds (one listing), cached for this command: they are never deleted."""
        if self._known is None:
            self._known = set(self.index().hashes)
        return frozenset(self._known)

    def pull_run(self, entry: GenerationEntry, root: Path, cache: HashCache | None = None) -> int:
        """Write the images of a finished run that are missing or changed here from the remote, and its sidecar.
        Every file lands in the run's output folder (the write guard) and only once all of them were fetched and
        hash-checked, so a bad object writes nothing. Returns how many images were written."""
        if not entry.output:
            return 0
        folder = root / entry.output
        wanted = [(_in_output(folder, entry.output, f.path), f.sha256) for f in entry.files]
        missing = [(dest, digest) for dest, digest in wanted if not _intact(dest, digest, cache)]
        fetched = [(dest, self.fetch(digest)) for dest, digest in missing]
        raw = self._sidecar_bytes(entry.name, entry.identity)
        if raw is not None:
            try:
                parse(raw, generation=entry.name, identity=entry.identity)
            except BadSidecar as exc:
                raise RemoteError(
                    f"the outputs remote's object {self.shown_key(entry.name, entry.identity)}: {exc.problem}; "
                    "nothing was written"
                ) from None
            fetched.append((inside_output(folder, sidecar_name(entry.stem)), raw))
        for dest, data in fetched:  # never over a differing local file: it moves to the folder's history first
            place_bytes(dest, data, hashlib.sha256(data).hexdigest())
        return len(missing) + self._pull_history(entry, folder, cache)

    def _pull_history(self, entry: GenerationEntry, folder: Path, cache: HashCache | None) -> int:
        """The images (and sidecars) of the runs a generation replaced, where the remote holds them: the history
        is the team's, not only the machine's that moved it aside."""
        written = 0
        known = self.known_hashes()
        assert entry.output is not None
        for record in entry.history:
            files = [*record.files, *([record.sidecar] if record.sidecar else [])]
            wanted = [(_in_output(folder, entry.output, f.path), f.sha256) for f in files]
            for (dest, digest), file in zip(wanted, files, strict=True):
                if _intact(dest, digest, cache):
                    continue
                if file is not record.sidecar:
                    if digest in known:
                        self.fetch_to(digest, dest)
                        written += 1
                    continue
                raw = self._sidecar_bytes(entry.name, record.identity)
                if raw is not None and hashlib.sha256(raw).hexdigest() == digest:  # the very bytes on record
                    place_bytes(dest, raw, digest)
        return written

    def push_run(self, entry: GenerationEntry, root: Path) -> int:
        """Store a run whose images are here but not in the remote (a remote configured after the fact)."""
        folder = root / entry.output if entry.output else None
        record: Sidecar | None = None
        if folder is not None:
            try:
                record = read_local(inside_output(folder, sidecar_name(entry.stem)), entry.name, entry.identity)
            except (OSError, BadSidecar):
                record = None
        if record is None:
            record = Sidecar.of_entry(entry)
        files = [(_in_output(folder, entry.output, f.path), f.sha256) for f in entry.files] if folder else []
        return self.store_run(entry.name, entry.identity, files, record)


def _in_output(folder: Path, output: str | None, path: str) -> Path:
    """A state's file path as a path in its generation's output folder `folder`, through the write guard."""
    return inside_output(folder, path.removeprefix(f"{output}/"))


def _intact(dest: Path, digest: str, cache: HashCache | None) -> bool:
    return dest.is_file() and (cache.hash(dest) if cache else sha256_file(dest)) == digest

"""The stat cache: content hashes and sniffed image formats trusted while size, mtime and inode are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from reconciler.desired.hashing import HashCache
from reconciler.errors import ManifestError
from reconciler.load import load_manifests

from .manifest_helpers import DATASET, image_bytes, project

GIF = b"GIF89a" + b"\0" * 64


def _same_stat_other_bytes(path: Path, data: bytes) -> None:
    """Overwrite `path` in place with `data` of the same length and put its mtime back: a change the
    stat cache cannot see (as with any stat cache, its contract)."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_hashes_are_sha256_and_a_changed_file_is_read_again(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.json"
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(image_bytes(seed=1))
    b.write_bytes(image_bytes(seed=2))
    cache = HashCache(cache_file)
    assert cache.hash_many([a, b]) == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b)}
    cache.save()
    b.write_bytes(image_bytes(seed=3))  # a new mtime (and size): hashed again
    fresh = HashCache(cache_file).hash_many([a, b])
    assert fresh[b] == hashlib.sha256(image_bytes(seed=3)).hexdigest()


def _load(root: Path, cache: HashCache) -> str:
    manifests = load_manifests([Path("m")], root, cache)
    images = manifests.datasets["ds"].images
    cache.hash_many([i.path for i in images])
    cache.save()
    return images[0].format


def test_an_unchanged_image_is_not_opened_to_sniff_its_type_again(tmp_path: Path) -> None:
    project(tmp_path, {"m/ds.yaml": DATASET, "img/a.jpg": image_bytes(seed=1)})
    cache_file = tmp_path / "state" / ".cache.json"
    cache_file.parent.mkdir()
    assert _load(tmp_path, HashCache(cache_file)) == "jpeg"
    image = tmp_path / "img" / "a.jpg"
    _same_stat_other_bytes(image, GIF + b"\0" * (image.stat().st_size - len(GIF)))
    assert _load(tmp_path, HashCache(cache_file)) == "jpeg"  # the recorded type: the file was not opened
    os.utime(image)  # a new mtime: sniffed again, and refused for what it now is
    with pytest.raises(ManifestError, match="is a GIF image by its content"):
        _load(tmp_path, HashCache(cache_file))


def test_without_a_cache_every_image_is_sniffed(tmp_path: Path) -> None:
    project(tmp_path, {"m/ds.yaml": DATASET, "img/a.jpg": image_bytes(seed=1)})
    image = tmp_path / "img" / "a.jpg"
    _same_stat_other_bytes(image, GIF + b"\0" * (image.stat().st_size - len(GIF)))
    with pytest.raises(ManifestError, match="is a GIF image by its content"):
        load_manifests([Path("m")], tmp_path)


@pytest.mark.parametrize("entry", [5, [1, 2], {"a": 1}, [1, 2, 3, 4], "size,mtime", None])
def test_a_malformed_cache_is_an_empty_one(tmp_path: Path, entry: object) -> None:
    """The stat cache is a local file anyone can break: anything unexpected in it costs a re-read, no error."""
    image = tmp_path / "a.png"
    image.write_bytes(b"png bytes")
    cache_file = tmp_path / "cache.json"
    cache_file.write_text(json.dumps({"version": 1, "entries": {str(image): entry}}))
    assert HashCache(cache_file).hash(image) == hashlib.sha256(b"png bytes").hexdigest()


def test_a_saved_entry_is_trusted_by_the_next_run_without_reading_the_file(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"png bytes")
    cache_file = tmp_path / "cache.json"
    first = HashCache(cache_file)
    digest = first.hash(image)
    first.save()
    _same_stat_other_bytes(image, b"PNG BYTES")  # unseen by a stat: the saved hash is what comes back
    assert HashCache(cache_file).hash(image) == digest
    assert json.loads(cache_file.read_text())["entries"][str(image)][3] == digest

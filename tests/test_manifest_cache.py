"""The manifest cache: an unchanged file is not parsed again, and nothing a user sees changes because of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.load import load_manifests
from reconciler.load.manifestcache import ManifestCache

from .manifest_helpers import DATASET, MODEL, project
from .test_manifest_invalid import CASES


def _problems(root: Path, parsed: ManifestCache | None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifests([Path("m")], root, parsed=parsed)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problems_read_through_the_cache_are_the_same(
    tmp_path: Path, files: dict[str, str | bytes | None], expected: list[str]
) -> None:
    """Every invalid-manifest case, its files taken from a warm cache: the same lines, at the same places
    (the positions of a cached document are parsed again when a problem needs them)."""
    root = tmp_path / "p"
    project(root, files)
    cache_file = tmp_path / "cache.json"
    first = ManifestCache(cache_file)
    direct = _problems(root, first)
    first.save()
    warm = ManifestCache(cache_file)
    assert _problems(root, warm) == direct
    placed = [e.replace("<ROOT>", str(root)).replace("<PARENT>", str(root.parent)) for e in expected]
    assert direct == placed


def test_a_cached_load_is_the_same_load(tmp_path: Path) -> None:
    project(tmp_path, {})
    cache_file = tmp_path / "state" / ".cache.json"
    cold = ManifestCache(cache_file)
    first = load_manifests([Path("m")], tmp_path, parsed=cold)
    cold.save()
    saved = json.loads(cache_file.read_text())
    assert len(saved["files"]) == 3 and saved["version"] == 1
    warm = ManifestCache(cache_file)
    assert warm.get(next(iter(saved["files"]))) is not None
    assert load_manifests([Path("m")], tmp_path, parsed=ManifestCache(cache_file)) == first
    stamp = cache_file.stat().st_mtime_ns
    ManifestCache(cache_file).save()  # nothing used, nothing new: not written
    again = ManifestCache(cache_file)
    load_manifests([Path("m")], tmp_path, parsed=again)
    again.save()
    assert cache_file.stat().st_mtime_ns == stamp


def test_an_edited_file_is_parsed_again(tmp_path: Path) -> None:
    project(tmp_path, {})
    cache_file = tmp_path / "cache.json"
    cache = ManifestCache(cache_file)
    load_manifests([Path("m")], tmp_path, parsed=cache)
    cache.save()
    (tmp_path / "m" / "lm.yaml").write_text(MODEL.replace("dataset: ds", "dataset: nope"))
    assert _problems(tmp_path, ManifestCache(cache_file)) == [
        'm/lm.yaml:6:12: LoraModel/lm: spec.dataset: no Dataset named "nope" (the Datasets are `ds`)'
    ]


def test_what_is_not_plain_json_is_not_cached(tmp_path: Path) -> None:
    """A date, or a list shared through an alias, would come back different from JSON: that file is parsed
    each time."""
    dated = DATASET.replace("metadata:\n", "metadata:\n  labels: {since: 2024-01-01}\n")
    aliased = DATASET.replace("  images:\n    - ../img/*.jpg", "  images: &i\n    - ../img/*.jpg\n  x: *i")
    for text in (dated, aliased):
        project(tmp_path, {"m/ds.yaml": text, "m/lm.yaml": None, "m/gen.yaml": None})
        cache = ManifestCache(tmp_path / "cache.json")
        with pytest.raises(ManifestError):
            load_manifests([Path("m")], tmp_path, parsed=cache)
        cache.save()
        assert not (tmp_path / "cache.json").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"version": 1, "reconciler": "0.0.0-other", "files": {}}',
        b'{"version": 1, "reconciler": "VERSION", "files": {"abc": [[1, 1, {}]]}}',
        b'{"version": 1, "reconciler": "VERSION", "files": {"' + b"a" * 64 + b'": [[0, 1, {}]]}}',
        b'{"version": 1, "reconciler": "VERSION", "files": {"' + b"a" * 64 + b'": [[1, 1, []]]}}',
        b'{"version": 2, "reconciler": "VERSION", "files": {}}',
    ],
)
def test_a_cache_file_that_is_not_ours_is_an_empty_cache(tmp_path: Path, content: bytes) -> None:
    from reconciler import __version__

    cache_file = tmp_path / "cache.json"
    cache_file.write_bytes(content.replace(b"VERSION", __version__.encode()))
    cache = ManifestCache(cache_file)
    assert cache.get("a" * 64) is None and cache.get("abc") is None
    project(tmp_path, {})
    load_manifests([Path("m")], tmp_path, parsed=cache)
    cache.save()
    assert len(json.loads(cache_file.read_text())["files"]) == 3

"""The outputs remote on a real folder (file://) and on S3 (moto's server, the real S3 client): the layout by
content hash, listings instead of one request per image, hash-checked fetches, and one-line errors naming the
setting for a missing bucket, an unknown scheme or a missing extra."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reconciler.errors import ConfigError, RemoteError
from reconciler.outputs.guard import UnsafePath
from reconciler.outputs.store import OutputsRemote
from reconciler.state import FileRecord, GenerationEntry
from tests.servers import S3_KEY_ID, S3_SECRET, S3Server
from tests.sidecars import identity_of, sidecar

ID1 = identity_of()


def _image(folder: Path, name: str, data: bytes) -> tuple[Path, str]:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _entry(files: list[tuple[str, str]], identity: str = ID1) -> GenerationEntry:
    return GenerationEntry(
        name="portraits",
        identity=identity,
        output="outputs/portraits",
        files=[FileRecord(path=p, sha256=h) for p, h in files],
    )


def test_a_file_remote_keeps_images_by_hash_and_sidecars_by_generation(tmp_path: Path) -> None:
    store = tmp_path / "share"
    store.mkdir()
    project = tmp_path / "project"
    a, ha = _image(project, "outputs/portraits/portraits-1.png", b"first image")
    b, hb = _image(project, "outputs/portraits/portraits-2.png", b"second image")
    remote = OutputsRemote(f"file://{store}/team")
    (store / "team").mkdir()
    assert remote.index().hashes == frozenset()
    sent = remote.store_run("portraits", ID1, [(a, ha), (b, hb)], sidecar("portraits", [(a, ha), (b, hb)]))
    assert sent == 2
    assert (store / "team/files/sha256" / ha[:2] / ha[2:]).read_bytes() == b"first image"
    assert json.loads((store / f"team/generations/portraits/{ID1}.json").read_text())["identity"] == ID1
    index = remote.index()
    assert index.hashes == {ha, hb} and index.sidecars == {("portraits", ID1)} and index.listings == 2
    assert remote.store_run("portraits", ID1, [(a, ha)], sidecar("portraits", [(a, ha)])) == 0  # known: not sent
    assert not list(store.rglob("*.part"))


def test_a_member_swept_over_a_string_with_a_slash_is_one_key_part(tmp_path: Path) -> None:
    from reconciler.outputs.store import key_part, name_of_key_part

    (tmp_path / "team").mkdir()
    remote = OutputsRemote(f"file://{tmp_path}/team")
    project = tmp_path / "project"
    a, ha = _image(project, "outputs/grid/x.png", b"an image")
    name = 'grid[prompt="a/b 100%",seed=1]'
    remote.store_run(name, ID1, [(a, ha)], sidecar(name, [(a, ha)]))
    assert remote.index().sidecars == {(name, ID1)}
    assert remote.read_sidecar(name, ID1) == sidecar(name, [(a, ha)])
    assert [p.name for p in (tmp_path / "team/generations").iterdir()] == ['grid[prompt="a%2Fb 100%25",seed=1]']
    for tricky in ("plain", "a/b", "%2F", "a%2Fb/", "%%//"):
        assert name_of_key_part(key_part(tricky)) == tricky and "/" not in key_part(tricky)


def test_pull_writes_missing_images_hash_checked_and_refuses_a_damaged_object(tmp_path: Path) -> None:
    store = tmp_path / "share"
    store.mkdir()
    project = tmp_path / "project"
    a, ha = _image(project, "outputs/portraits/portraits-1.png", b"first image")
    remote = OutputsRemote(f"file://{store}")
    remote.store_run("portraits", ID1, [(a, ha)], sidecar("portraits", [(a, ha)]))
    a.unlink()
    entry = _entry([("outputs/portraits/portraits-1.png", ha)])
    assert remote.pull_run(entry, project) == 1
    assert a.read_bytes() == b"first image"
    assert json.loads((project / "outputs/portraits/portraits.reconciler.json").read_text())["identity"] == ID1
    assert remote.pull_run(entry, project) == 0  # intact: left alone
    a.unlink()
    (store / "files/sha256" / ha[:2] / ha[2:]).write_bytes(b"tampered")
    with pytest.raises(RemoteError, match=rf"object file://{store}/files/sha256/{ha[:2]}/{ha[2:]} does not hash"):
        remote.pull_run(entry, project)
    assert not a.exists()


def test_a_state_naming_a_file_outside_its_output_folder_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "share"
    store.mkdir()
    remote = OutputsRemote(f"file://{store}")
    with pytest.raises(UnsafePath, match=r"is not a file name in an output folder; nothing was written"):
        remote.pull_run(_entry([("../../escape.png", "0" * 64)]), tmp_path / "project")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["share"]


def test_s3_through_moto_lists_instead_of_asking_per_image(
    s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    images = [_image(tmp_path, f"img-{n}.png", f"image {n}".encode()) for n in range(30)]
    remote = OutputsRemote(f"s3://{bucket}/loras")
    remote.store_run("portraits", ID1, images, sidecar("portraits", images))
    before = len(s3.requests())
    index = OutputsRemote(f"s3://{bucket}/loras").index()
    requests = s3.requests()[before:]
    assert len(index.hashes) == 30 and index.sidecars == {("portraits", ID1)}
    assert len(requests) == 2 and all("list-type=2" in r for r in requests), requests


def test_a_bucket_that_does_not_exist_is_one_line_naming_the_setting(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    remote = OutputsRemote("s3://no-such-bucket/x", "outputs.remote in reconciler.yaml")
    with pytest.raises(RemoteError) as failed:
        remote.index()
    message = str(failed.value)
    assert message == (
        "outputs.remote in reconciler.yaml s3://no-such-bucket/x: cannot list it (does the bucket or folder "
        "exist?): The specified bucket does not exist"
    )
    assert S3_SECRET not in message and S3_KEY_ID not in message


def test_unknown_scheme_and_missing_extra_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as unknown:
        OutputsRemote("foo://bucket/x", "RECONCILER_OUTPUTS_REMOTE").index()
    assert str(unknown.value) == (
        "RECONCILER_OUTPUTS_REMOTE foo://bucket/x: unknown scheme foo://; use s3://, gs://, az:// or file:///path"
    )
    with pytest.raises(ConfigError) as missing:  # gcsfs is not installed with the dev extra
        OutputsRemote("gs://bucket/x").index()
    assert (
        str(missing.value)
        == "outputs.remote gs://bucket/x: gs:// needs an extra package: pip install 'reconciler[gcs]'"
    )
    with pytest.raises(RemoteError, match=r"cannot list it \(does the bucket or folder exist\?\)"):
        OutputsRemote(f"file://{tmp_path}/missing").index()

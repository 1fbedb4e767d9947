"""The sidecar record and the write guard, as values: what is written, what is read back, what is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.filenames import folder_problem, hash_problem, name_problem, path_problem
from reconciler.observe.facts import SkippedRecord
from reconciler.outputs.guard import OutputFolder, UnsafePath, inside_output
from reconciler.outputs.sidecar import BadSidecar, parse
from reconciler.state import parse_state
from reconciler.state.model import SkippedEntry
from tests.planner_fixtures import generation
from tests.sidecars import identity_of, sidecar

H = "a" * 64


def test_a_sidecar_reads_back_as_written_and_older_fields_are_ignored() -> None:
    written = sidecar("portraits", [("portraits-1.png", H)])
    data = json.loads(written.to_json())
    assert sorted(data) == [
        "axes", "generation", "identity", "images", "matrix", "request", "seed", "task_id", "task_type", "written_at",
    ]  # fmt: skip
    assert parse(written.to_json().encode(), generation="portraits", identity=written.identity) == written
    data["from_a_newer_writer"] = {"anything": 1}
    assert parse(json.dumps(data).encode()) == written


def test_the_identity_is_the_hash_of_the_request_the_sidecar_records() -> None:
    gen = generation()
    names = {m: f"{m}-trained" for m in gen.lora_models}
    request = {"extra": gen.extra, "request": gen.resolved_request(names)}
    assert identity_of(request, gen.task_type) == gen.identity(names)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["images"][0].update(file="../x.png"), "image 1: '../x.png' climbs out of its folder"),
        (lambda d: d["images"][0].update(file="/etc/x.png"), "image 1: '/etc/x.png' is an absolute path"),
        (lambda d: d["images"][0].update(file="a/x.png"), "image 1: 'a/x.png' is a path, not a plain file name"),
        (lambda d: d["images"][0].update(file="x.yaml"), "image 1: 'x.yaml' is not an image file name"),
        (lambda d: d["images"][0].update(file=".x.png"), "image 1: '.x.png' is a hidden or relative name"),
        (lambda d: d["images"][0].update(file="nul.png"), "image 1: 'nul.png' is not a name reconciler writes"),
        (lambda d: d["images"][0].update(sha256="ABC"), "image 1: 'ABC' is not a sha256 (64 hex digits)"),
        (lambda d: d["images"].append(dict(d["images"][0])), "it names one file twice"),
        (lambda d: d.update(images=[]), "it lists no images"),
        (lambda d: d.update(identity="f" * 64), "it records identity ffffffffffff… but is stored as"),
        (lambda d: d["request"]["request"].update(prompt="x"), "is not the hash of the request it records"),
        (lambda d: d.pop("request"), "it records no task type or request to check its identity against"),
        (lambda d: d.update(generation="other"), "it records Generation/other, not Generation/portraits"),
    ],
)
def test_a_sidecar_that_fails_a_check_is_refused_saying_what(change: object, problem: str) -> None:
    good = sidecar("portraits", [("portraits-1.png", H)])
    data = json.loads(good.to_json())
    change(data)  # type: ignore[operator]
    with pytest.raises(BadSidecar) as caught:
        parse(json.dumps(data).encode(), generation="portraits", identity=good.identity)
    assert problem in caught.value.problem, caught.value.problem


def test_truncated_huge_and_non_object_sidecars_are_refused() -> None:
    raw = sidecar("portraits", [("portraits-1.png", H)]).to_json().encode()
    for bad, problem in [
        (raw[:40], "it is not valid JSON (truncated or corrupt"),
        (b"[1, 2]", "it is not a JSON object"),
        (b" " * (1 << 20) + raw, "it is over 1,048,576 bytes, too large for a sidecar"),
    ]:
        with pytest.raises(BadSidecar, match=rf"^{problem}".replace("(", r"\(")):
            parse(bad)
    many = json.loads(raw)
    many["images"] = [{"file": f"p-{n}.png", "sha256": H} for n in range(1001)]
    with pytest.raises(BadSidecar, match=r"^it lists 1,001 images, more than any run makes$"):
        parse(json.dumps(many).encode())


def test_names_paths_and_hashes_from_a_record() -> None:
    assert name_problem("portraits-1.png") is None and name_problem("p.reconciler.json", sidecar=True) is None
    assert name_problem("p.reconciler.json") == "'p.reconciler.json' is not an image file name"
    assert path_problem("outputs/p/p-1.png", folder="outputs/p") is None
    assert (
        path_problem("outputs/q/p-1.png", folder="outputs/p")
        == "'outputs/q/p-1.png' is not in its output folder outputs/p"
    )
    assert folder_problem("outputs/grid/seed=1,prompt=a b") is None
    assert (
        folder_problem("outputs/../manifests")
        == "'outputs/../manifests' leaves its folder (an empty, `.` or `..` part)"
    )
    assert folder_problem(".git/hooks") == "'.git/hooks' is in a hidden folder"
    assert folder_problem("C:/x") == "'C:/x' is an absolute path"
    assert hash_problem(H) is None and hash_problem(H.upper()) is not None and hash_problem(None) is not None


def test_the_guard_keeps_every_write_inside_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "outputs/p"
    assert inside_output(out, "p-1.png") == out / "p-1.png"
    assert inside_output(out, "history/0123456789ab/p-1.png") == out / "history/0123456789ab/p-1.png"
    for name, problem in [
        ("../p.png", "'../p.png' is not a file name in an output folder"),
        ("history/../p.png", "'..' leaves its folder (an empty, `.` or `..` part)"),
        ("history/.git/p.png", "'.git' is in a hidden folder"),
        ("a/b/c/p.png", "'a/b/c/p.png' is not a file name in an output folder"),
    ]:
        with pytest.raises(UnsafePath) as caught:
            inside_output(out, name)
        assert caught.value.problem == problem, caught.value.problem
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests/a.yaml").write_text("kind: Generation\n")
    with pytest.raises(UnsafePath, match=r"the folder holds a.yaml \(manifests and settings are never written over\)"):
        inside_output(tmp_path / "manifests", "p-1.png")
    with pytest.raises(UnsafePath, match=r"the folder is inside \.git"):
        inside_output(tmp_path / ".git/hooks", "p-1.png")
    out.mkdir(parents=True)
    (out / "p-1.png").symlink_to(tmp_path / "manifests/a.yaml")
    with pytest.raises(UnsafePath, match="it leaves the output folder through a symbolic link"):
        inside_output(out, "p-1.png")


def test_a_state_entry_that_fails_a_check_is_left_out_when_read() -> None:
    good = {"path": "outputs/p/p-1.png", "sha256": H}
    entry = {"kind": "Generation", "name": "p", "identity": identity_of(), "output": "outputs/p", "files": [good]}
    bad = replace_file(entry, path="outputs/p/../../reconciler.yaml")
    raw = {"version": 1, "serial": 3, "lineage": "l", "resources": {"Generation/p": entry, "Generation/q": bad}}
    raw["resources"]["Generation/q"] = {**bad, "name": "q"}
    state = parse_state(json.dumps(raw).encode(), "state.json")
    assert list(state.resources) == ["Generation/p"]
    assert state.skipped == [
        SkippedEntry(
            "Generation/q",
            "files[0].path",
            "'outputs/p/../../reconciler.yaml' leaves its folder (an empty, `.` or `..` part)",
        )
    ]


def replace_file(entry: dict[str, object], **fields: str) -> dict[str, object]:
    files = entry["files"]
    assert isinstance(files, list)
    return {**entry, "files": [{**files[0], **fields}]}


def test_a_sidecar_in_the_output_folder_adopts_only_when_it_passes(tmp_path: Path) -> None:
    """After a state loss the output folder's sidecar adopts its images; one that fails a check is a warning
    naming the file, and the generation is seen as having no sidecar."""
    from reconciler.desired.hashing import HashCache
    from reconciler.outputs.folders import observe
    from reconciler.state import State
    from tests.planner_fixtures import desired

    gen = replace(generation(loras=()), output_dir=tmp_path / "out/portraits")
    gen.output_dir.mkdir(parents=True)
    image = gen.output_dir / "portraits-1.png"
    image.write_bytes(b"an image")
    digest = hashlib.sha256(b"an image").hexdigest()
    request = {"extra": gen.extra, "request": gen.resolved_request({})}
    good = sidecar(gen.name, [(image, digest)], request)
    assert good.identity == gen.identity({})
    (gen.output_dir / "portraits.reconciler.json").write_text(good.to_json())
    seen = observe(desired(gen), State(), HashCache(None), tmp_path)[gen.address]
    assert (seen.sidecar_identity, seen.sidecar_files, seen.warnings) == (
        good.identity,
        (("out/portraits/portraits-1.png", digest),),
        (),
    )
    bad = json.loads(good.to_json())
    bad["images"][0]["file"] = "../../reconciler.yaml"
    (gen.output_dir / "portraits.reconciler.json").write_text(json.dumps(bad))
    seen = observe(desired(gen), State(), HashCache(None), tmp_path)[gen.address]
    assert (seen.sidecar_identity, seen.sidecar_files) == (None, ())
    assert seen.warnings == (
        SkippedRecord(
            "the sidecar out/portraits/portraits.reconciler.json",
            "image 1: '../../reconciler.yaml' climbs out of its folder (`..`), not a plain file name",
            "Generation/portraits",
        ),
    )


def test_an_output_folder_is_checked_once_and_links_among_a_names_parts_are_followed(tmp_path: Path) -> None:
    """OutputFolder: each name as inside_output would take it, the folder looked at once; a symbolic link among a
    name's own parts is resolved, and allowed only while it stays inside the folder."""
    out = tmp_path / "outputs/p"
    (out / "history/0123456789ab").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "history/aaaaaaaaaaaa").symlink_to(out / "history/0123456789ab")  # stays inside
    (out / "history/bbbbbbbbbbbb").symlink_to(tmp_path / "elsewhere")  # leaves
    names = ["p-1.png", "history/aaaaaaaaaaaa/p-2.png", "p.reconciler.json"]
    folder = OutputFolder(out)
    assert [folder.path(n) for n in names] == [out / n for n in names]
    with pytest.raises(UnsafePath) as caught:
        folder.path("history/bbbbbbbbbbbb/p-2.png")
    assert (caught.value.name, caught.value.problem) == (
        "history/bbbbbbbbbbbb/p-2.png",
        "it leaves the output folder through a symbolic link",
    )
    with pytest.raises(UnsafePath, match="not a file name in an output folder"):
        folder.path("../x.png")
    (out / "notes.yaml").write_text("a: 1\n")  # looked at once: a new OutputFolder sees it
    assert folder.path("p-3.png") == out / "p-3.png"
    with pytest.raises(UnsafePath, match=r"the folder holds notes\.yaml"):
        OutputFolder(out).path("p-3.png")
    (out / "notes.yaml").unlink()
    (out / "p-9.png").symlink_to(tmp_path / "elsewhere/p-9.png")
    with pytest.raises(UnsafePath, match="through a symbolic link"):
        inside_output(out, "p-9.png")

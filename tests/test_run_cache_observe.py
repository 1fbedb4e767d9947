"""Observing the run cache on a real folder: what is held, where, verified by hash; and outputs.place's writes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import DesiredGeneration
from reconciler.observe.facts import OutputFacts
from reconciler.observe.holdings import observe_run_cache
from reconciler.outputs.place import make_room, place_bytes, place_file
from reconciler.state import FileRecord, ForgottenEntry, GenerationEntry, HistoryRecord, State
from reconciler.status import Status
from tests.planner_fixtures import desired, generation

PNG = b"\x89PNG\r\n\x1a\n"


def gen(root: Path, name: str, prompt: str) -> DesiredGeneration:
    g = generation(name, loras=(), prompt=prompt)
    return dataclasses.replace(g, output_dir=root / "out" / name, output_display=f"out/{name}")


def write(root: Path, rel: str, data: bytes) -> FileRecord:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return FileRecord(path=rel, sha256=hashlib.sha256(data).hexdigest())


def identity(g: DesiredGeneration) -> str:
    found = g.identity({})
    assert found is not None
    return found


def test_a_converged_project_reads_nothing_more(tmp_path: Path) -> None:
    g = gen(tmp_path, "a", "cat")
    files = [write(tmp_path, "out/a/a-1.png", PNG + b"1")]
    entry = GenerationEntry(name="a", identity=identity(g), output="out/a", files=files)
    state = State(resources={g.address: entry})
    cache = observe_run_cache(desired(g), state, HashCache(None), tmp_path, {g.address: OutputFacts(True)})
    assert cache.generations == {}


def test_records_and_folders_are_held_only_with_every_file_intact(tmp_path: Path) -> None:
    cat, dog = gen(tmp_path, "a", "cat"), gen(tmp_path, "a", "dog")
    history = [write(tmp_path, f"out/a/history/{identity(cat)[:12]}/a-1.png", PNG + b"cat")]
    now = [write(tmp_path, "out/a/a-1.png", PNG + b"dog")]
    record = HistoryRecord(identity=identity(cat), folder=f"out/a/history/{identity(cat)[:12]}", files=history)
    entry = GenerationEntry(name="a", identity=identity(dog), output="out/a", files=now, history=[record])
    forgotten_files = [write(tmp_path, "out/b/b-1.png", PNG + b"cat")]
    forgotten = ForgottenEntry(name="Generation/b", identity=identity(cat), files=forgotten_files)
    state = State(resources={entry.address: entry, forgotten.address: forgotten})
    found = observe_run_cache(desired(cat), state, HashCache(None), tmp_path, {})
    held = [(h.source, h.owner, h.where) for h in found.generation(identity(cat))]
    assert held == [
        ("history", "Generation/a", f"out/a/history/{identity(cat)[:12]}"),
        ("forgotten", "Generation/b", "out/b"),
    ]
    (tmp_path / "out/b/b-1.png").write_bytes(PNG + b"changed")  # a changed file holds nothing
    found = observe_run_cache(desired(cat), state, HashCache(None), tmp_path, {})
    assert [h.source for h in found.generation(identity(cat))] == ["history"]


def test_a_history_folder_no_record_names_is_found_by_its_sidecar(tmp_path: Path) -> None:
    cat = gen(tmp_path, "a", "cat")
    folder = f"out/a/history/{identity(cat)[:12]}"
    image = write(tmp_path, f"{folder}/a-1.png", PNG + b"cat")
    sidecar = {
        "generation": "a",
        "identity": identity(cat),
        "task_type": cat.task_type,
        "request": {"request": cat.resolved_request({}), "extra": cat.extra},
        "task_id": "t-9",
        "seed": "5",
        "images": [{"file": "a-1.png", "sha256": image.sha256}],
    }
    (tmp_path / folder / "a.reconciler.json").write_text(json.dumps(sidecar))
    found = observe_run_cache(desired(cat), State(), HashCache(None), tmp_path, {})
    (held,) = found.generation(identity(cat))
    assert (held.source, held.owner, held.files, held.task_id) == (
        "history",
        "Generation/a",
        ((image.path, image.sha256),),
        "t-9",
    )


def test_a_state_entry_of_another_address_is_held(tmp_path: Path) -> None:
    cat, other = gen(tmp_path, "a", "cat"), gen(tmp_path, "old", "cat")
    files = [write(tmp_path, "out/old/old-1.png", PNG + b"cat")]
    entry = GenerationEntry(
        name="old", identity=identity(other), status=Status.SUCCEEDED, output="out/old", files=files
    )
    found = observe_run_cache(desired(cat), State(resources={entry.address: entry}), HashCache(None), tmp_path, {})
    assert [(h.source, h.owner) for h in found.find(identity(cat))] == [("state", "Generation/old")]


def test_place_never_writes_over_other_bytes(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "a-1.png"
    data = PNG + b"new"
    digest = hashlib.sha256(data).hexdigest()
    assert place_bytes(dest, data, digest) == (True, None)
    assert place_bytes(dest, data, digest) == (False, None)  # already these bytes: untouched
    dest.write_bytes(PNG + b"someone's")
    written, aside = place_bytes(dest, data, digest)
    assert written and aside is not None and aside.read_bytes() == PNG + b"someone's"
    assert aside.parent.parent.name == "history" and dest.read_bytes() == data
    with pytest.raises(ValueError):
        place_bytes(dest, b"other", digest)
    src = tmp_path / "src.png"
    src.write_bytes(PNG + b"src")
    with pytest.raises(ValueError):
        place_file(tmp_path / "x.png", src, digest)  # the source no longer has the recorded hash
    assert make_room(tmp_path / "missing.png") is None


def test_explain_can_ask_for_an_identity_its_own_entry_already_holds(tmp_path: Path) -> None:
    g = gen(tmp_path, "a", "cat")
    files = [write(tmp_path, "out/a/a-1.png", PNG + b"1")]
    entry = GenerationEntry(name="a", identity=identity(g), output="out/a", files=files)
    state = State(resources={g.address: entry})
    facts = {g.address: OutputFacts(True)}
    cache = observe_run_cache(desired(g), state, HashCache(None), tmp_path, facts, identities=[identity(g)])
    assert [(h.source, h.owner, h.files) for h in cache.find(identity(g))] == [
        ("state", "Generation/a", (("out/a/a-1.png", files[0].sha256),))
    ]

"""The state file: atomic save with backup, refusal of bad files, and the lock between processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.errors import LockError, StateError
from reconciler.state import DatasetEntry
from reconciler.state.file import StateLock, StateStore, force_unlock, lock_path_for, read_state


def test_missing_file_is_a_new_state(tmp_path: Path) -> None:
    state = read_state(tmp_path / "state.json")
    assert state.serial == 0 and state.resources == {} and len(state.lineage) == 36


def test_save_increments_serial_keeps_lineage_and_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.json"
    store = StateStore(path)
    store.state.resources["Dataset/a"] = DatasetEntry(name="a", identity="x")
    store.save()
    first = path.read_bytes()
    lineage = json.loads(first)["lineage"]
    store.state.resources["Dataset/b"] = DatasetEntry(name="b", identity="y")
    store.save()
    data = json.loads(path.read_bytes())
    assert (data["serial"], data["lineage"], data["version"]) == (2, lineage, 1)
    assert path.with_name("state.json.backup").read_bytes() == first
    assert sorted(os.listdir(path.parent)) == ["state.json", "state.json.backup"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": 1, "serial": 3, "lin', "the state file is truncated (invalid JSON at line 1, column 29)"),
        (b'{"version": 1,, }', "the state file is corrupt (invalid JSON at line 1, column 15)"),
        (b"\xff\xfe\x00garbage", "the state file is not UTF-8 text"),
        (b"[1, 2]", "the state file is not a JSON object"),
        (b'{"serial": 1}', "the state file has no version number"),
        (b'{"version": 2, "serial": 1}', "the state file has version 2, newer than this reconciler understands"),
        (b'{"version": 1, "resources": {"X/y": {"kind": 1}}}', "the state file is invalid at resources.X/y"),
    ],
)
def test_bad_state_files_are_refused_and_never_overwritten(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError) as err:
        StateStore(path)
    assert str(err.value).startswith(f"{path}: {message}")
    assert path.read_bytes() == content


def test_a_state_changed_underneath_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save()
    other = StateStore(path)
    other.save()  # someone else wrote serial 2
    foreign = path.read_bytes()
    with pytest.raises(StateError, match="changed on disk while reconciler was running"):
        store.save()
    assert path.read_bytes() == foreign


def test_lock_names_its_holder_to_the_second_process(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from reconciler.state.file import StateLock
                with StateLock(Path({str(state)!r}), command="apply"):
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError) as err:
            StateLock(state).acquire()
        text = str(err.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in text
        assert "running 'apply'" in text
        with pytest.raises(LockError, match=r"after waiting 0\.3s"):
            StateLock(state, timeout=0.3).acquire()
        with pytest.raises(LockError, match="held by a running process"):
            force_unlock(state)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=10)
    with StateLock(state) as lock:  # released: free again
        assert lock.took_over is None


def test_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lock_path_for(state).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "then"}))
    with StateLock(state) as lock:
        assert lock.took_over is not None and lock.took_over["pid"] == pid


def test_lock_from_another_host_needs_force_unlock(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    lock_path_for(state).write_text(json.dumps({"pid": 1, "host": "ci-runner-7", "since": "2026-01-01T00:00:00Z"}))
    with pytest.raises(LockError) as err:
        StateLock(state).acquire()
    assert "pid 1 on ci-runner-7, since 2026-01-01T00:00:00Z" in str(err.value)
    assert "run `reconciler force-unlock`" in str(err.value)
    assert force_unlock(state) == {"pid": 1, "host": "ci-runner-7", "since": "2026-01-01T00:00:00Z"}
    with StateLock(state):
        pass


def test_equal_image_records_are_one_object_and_the_state_reads_back_unchanged(tmp_path: Path) -> None:
    """A large state is held once per image record (its Dataset and every LoraModel list it), and sharing
    changes no value: bools, numbers, empty strings and nulls are kept as written."""
    record = {"file": "photos/a.jpg", "sha256": "ab" * 32, "caption": None}
    other = {"file": "photos/b.jpg", "sha256": "cd" * 32, "caption": ""}
    data = {
        "version": 1,
        "serial": 4,
        "lineage": "00000000-0000-4000-8000-000000000000",
        "images": {"ab" * 32: {"assets_id": "x1", "format": "jpeg", "uploaded_at": "", "status": "uploaded"}},
        "resources": {
            "Dataset/d": {"kind": "Dataset", "name": "d", "identity": "i1", "images": ["ab" * 32, "cd" * 32],
                          "attributes": {"images": [dict(record), dict(other)], "flip": True}},
            "LoraModel/m": {"kind": "LoraModel", "name": "m", "identity": "i2", "dataset": "d",
                            "attributes": {"images": [dict(record), dict(other)], "flip": 1, "rate": 1.0}},
        },
    }  # fmt: skip
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data))
    state = read_state(path)
    dataset, model = state.resources["Dataset/d"], state.resources["LoraModel/m"]
    assert dataset.attributes["images"][0] is model.attributes["images"][0]
    assert dataset.attributes["images"] == [record, other] and model.attributes["images"] == [record, other]
    assert dataset.attributes["flip"] is True and model.attributes["flip"] == 1 and model.attributes["flip"] is not True
    assert type(model.attributes["rate"]) is float
    again = json.loads(state.model_dump_json())
    for address, entry in data["resources"].items():
        assert {k: again["resources"][address][k] for k in entry} == entry

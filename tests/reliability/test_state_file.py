"""The state file: bad files are refused with a clear error naming the file and never overwritten; the backup
is the previous version and restores; a save killed at any instant never leaves a torn file."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.state import GenerationEntry, parse_state
from reconciler.state.file import StateStore
from tests.manifest_helpers import project
from tests.reliability.cli_inprocess import closed_port_url, run_main

REPO = Path(__file__).resolve().parents[2]
VALID = json.dumps({"version": 1, "serial": 3, "lineage": "l-1", "images": {}, "resources": {}}, indent=1)

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "truncated": (VALID.encode()[: len(VALID) // 2], "the state file is truncated"),
    "corrupt": (b'{"version": 1, "serial": 3,, }', "the state file is corrupt"),
    "garbage": (b"\x00\x01\x02PK\x03\x04 not json", "the state file is"),
    "not-utf8": (b'{"version": 1, "lineage": "\xff\xfe"}', "not UTF-8"),
    "future-version": (VALID.replace('"version": 1', '"version": 7').encode(), "has version 7, newer than"),
    "no-version": (b'{"serial": 1}', "has no version number"),
    "a-list": (b"[1, 2, 3]", "is not a JSON object"),
    "wrong-shape-resources": (b'{"version": 1, "resources": [1, 2]}', "the state file is invalid at resources"),
    "wrong-shape-entry": (b'{"version": 1, "resources": {"LoraModel/x": {"kind": 5}}}', "is invalid at resources"),
    "empty": (b"", "the state file is truncated"),
}
COMMANDS = [
    ["plan", "-f", "m"],
    ["plan", "--no-refresh", "-f", "m"],
    ["apply", "--auto-approve", "-f", "m"],
    ["refresh", "-f", "m"],
    ["state", "list"],
    ["state", "rm", "LoraModel/x"],
]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", "sk-state-file-never-used")
    monkeypatch.setenv("NOVITA_API_BASE", closed_port_url())


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_state_file_is_refused_and_left_alone(tmp_path: Path, offline: None, kind: str) -> None:
    project(tmp_path, {})
    raw, message = BAD_FILES[kind]
    path = tmp_path / "state/state.json"
    path.parent.mkdir()
    path.write_bytes(raw)
    digest = hashlib.sha256(raw).hexdigest()
    for args in COMMANDS:
        code, out, err = run_main(args, tmp_path)
        assert "Traceback" not in err, err
        assert code == 1, (args, out, err)
        assert err.startswith("Error: state/state.json: ") and message in err, (args, err)
        assert "Connect" not in err, err
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{args} changed the file"
    assert not (tmp_path / "state/state.json.backup").exists()


def test_backup_is_the_previous_version_and_restores(tmp_path: Path, offline: None) -> None:
    project(tmp_path, {})
    path = tmp_path / "state/state.json"
    store = StateStore(path)
    store.state.resources["Generation/old"] = GenerationEntry(name="old", identity="1" * 64)
    store.save()
    first = path.read_bytes()
    store.state.resources["Generation/new"] = GenerationEntry(name="new", identity="2" * 64)
    store.save()
    assert (tmp_path / "state/state.json.backup").read_bytes() == first
    assert parse_state(first, "b").serial == parse_state(path.read_bytes(), "s").serial - 1
    path.write_bytes(path.read_bytes()[:40])  # the disk fills up, a bad merge, ...
    code, _, err = run_main(["plan", "--no-refresh", "-f", "m"], tmp_path)
    assert code == 1 and "Restore it from state/state.json.backup" in err, err
    shutil.copy(tmp_path / "state/state.json.backup", path)
    code, out, err = run_main(["plan", "--no-refresh", "-f", "m"], tmp_path)
    assert code == 0, out + err
    assert "- Generation/old" in out


SAVER = """
import sys
from pathlib import Path
from reconciler.state import GenerationEntry
from reconciler.state.file import StateStore
store = StateStore(Path(sys.argv[1]))
i = store.state.serial
while True:
    i += 1
    store.state.resources[f"Generation/g{i % 40}"] = GenerationEntry(
        name=f"g{i}", identity="a" * 64, attributes={"blob": "y" * (i * 97 % 20000)}
    )
    store.save()
    if i % 10 == 0:
        print(i, flush=True)
"""


def test_a_save_killed_at_any_instant_never_tears_the_file(tmp_path: Path, figure: Any) -> None:
    path = tmp_path / "state/state.json"
    rng = random.Random(5)
    kills = 0
    serials = []
    for _ in range(25):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO)}
        )
        assert child.stdout is not None
        child.stdout.readline()  # it is saving
        time.sleep(rng.uniform(0.0, 0.15))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        kills += 1
        state = parse_state(path.read_bytes(), str(path))  # always whole
        parse_state((tmp_path / "state/state.json.backup").read_bytes(), "backup")
        serials.append(state.serial)
    assert serials == sorted(serials) and serials[-1] > 25
    figure(f"state file: {kills} SIGKILLs during save loops, 0 torn files (last serial {serials[-1]})")

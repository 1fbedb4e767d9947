"""A hostile outputs remote and a hostile shared state, through the real CLI against the simulator.

One converged apply fills a `file://` outputs remote and a state; each case then tampers with a copy of one of
them (a sidecar naming `../..`, an absolute path, a separator, a manifest, a git hook; a wrong identity; bytes
that do not hash to their name; truncated JSON; a huge file list; state entries with the same paths, in a state
file and in PostgreSQL) and runs a fresh clone's `apply --auto-approve` (or `pull`, or `apply --prune`). Every
case: no traceback, the exit status README documents, the record blamed by where it came from, and every file of
the project outside the generation's output folders byte-identical (the whole project hashed before and after;
a fake `.git/hooks/pre-commit` included), nothing written outside the project.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.state import State
from reconciler.state.postgres import PostgresBackend
from tests.e2e.harness import Project, SimProcess, make_project, start_sim
from tests.servers import SUPERUSER_PASSWORD, Cluster

pytestmark = pytest.mark.e2e

GEN = "alice-portraits"
OUTPUT = f"outputs/{GEN}"
HOOK = b"#!/bin/sh\necho hooked\n"
# what an apply may write: the output folders, the state, the hash cache and the gallery
WRITABLE = ("outputs/", "state/", ".state.hashcache", "gallery/")


@dataclass
class Seeded:
    sim: SimProcess
    remote: Path  # the outputs remote one converged apply filled
    state: Path  # that apply's state file


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("hostile-remote")
    sim = start_sim(tmp / "sim", "--ipm-txt2img", "0", "--ipm-img2img", "0")
    try:
        project = make_project(tmp / "first", sim)
        (project.root / "reconciler.yaml").write_text(f"outputs:\n  remote: file://{tmp}/remote\n")
        (tmp / "remote").mkdir()
        done = project.run("apply", "--auto-approve", "--poll-interval", "0.05")
        assert done.returncode == 0, done.stdout + done.stderr
        yield Seeded(sim, tmp / "remote", project.root / "state/state.json")
    finally:
        sim.stop()


@dataclass
class Clone:
    project: Project
    remote: Path  # this clone's copy of the outputs remote
    outside: Path  # a folder beside the project: nothing may appear in it

    @property
    def root(self) -> Path:
        return self.project.root

    def sidecar(self) -> Path:
        (found,) = (self.remote / "generations" / GEN).glob("*.json")
        return found

    def edit_sidecar(self, change: Callable[[dict[str, Any]], None]) -> None:
        data = json.loads(self.sidecar().read_text())
        change(data)
        self.sidecar().write_text(json.dumps(data))

    def run(self, *args: str) -> tuple[int, str, str]:
        done = self.project.run(*args, "--poll-interval", "0.05") if args[0] == "apply" else self.project.run(*args)
        return done.returncode, done.stdout, done.stderr


def _clone(tmp: Path, seeded: Seeded, *, with_state: bool = False) -> Clone:
    remote = tmp / "remote"
    shutil.copytree(seeded.remote, remote)
    project = make_project(tmp, seeded.sim)
    (project.root / "reconciler.yaml").write_text(f"outputs:\n  remote: file://{remote}\n")
    (project.root / ".git/hooks").mkdir(parents=True)
    (project.root / ".git/hooks/pre-commit").write_bytes(HOOK)
    if with_state:
        (project.root / "state").mkdir()
        shutil.copy(seeded.state, project.root / "state/state.json")
    (tmp / "outside").mkdir()
    return Clone(project, remote, tmp / "outside")


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _untouched(clone: Clone, run: Callable[[], tuple[int, str, str]]) -> tuple[int, str, str]:
    """Run it; no traceback, every file that was there unchanged but in the output folders, nothing new but in
    the places an apply writes, nothing beside the project."""
    before = _digest(clone.root)
    code, out, err = run()
    assert "Traceback" not in out + err, out + err
    after = _digest(clone.root)
    changed = [p for p, h in before.items() if after.get(p) != h and not p.startswith(("outputs/", "state/", "."))]
    assert not changed, (changed, out, err)
    assert after[".git/hooks/pre-commit"] == hashlib.sha256(HOOK).hexdigest()
    new = [p for p in after if p not in before and not p.startswith(WRITABLE)]
    assert not new, (new, out, err)
    assert not any(clone.outside.iterdir()), out + err
    return code, out, err


# ------------------------------------------------------------------------------------------ the outputs remote

HOSTILE_NAMES = {  # the file name a sidecar gives its first image, and what the warning says of it
    "absolute": ("/{outside}/PWNED.png", "is an absolute path, not a plain file name"),
    "separator": ("sub/folder.png", "is a path, not a plain file name"),
    "manifest": ("manifests/alice.yaml", "is a path, not a plain file name"),
    "manifest-name": ("alice.yaml", "is not an image file name"),
    "git-hook": (".git/hooks/pre-commit", "is a path, not a plain file name"),
    "hidden": (".hidden.png", "is a hidden or relative name"),
    "reserved": ("CON.png", "is not a name reconciler writes (reserved or special characters)"),
    "backslash": ("..\\..\\x.png", "climbs out of its folder (`..`), not a plain file name"),
}


def _skips(clone: Clone, change: Callable[[dict[str, Any]], None] | None, problem: str) -> str:
    """The fresh clone's apply skips the tampered sidecar, saying so, and generates the images again (exit 0)."""
    if change is not None:
        clone.edit_sidecar(change)
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve"))
    assert code == 0, out + err
    warning = next((line for line in out.splitlines() if line.startswith("Warning: ")), "")
    assert warning.startswith(f"Warning: the outputs remote's object file://{clone.sidecar()}: "), out
    assert problem in warning, out
    assert warning.endswith(f"; skipped: Generation/{GEN} is treated as if it were not there"), out
    assert f"  + Generation/{GEN}" in out, out  # planned as if the record were not there: generated again
    assert "2 adopted, 1 generated (2 images), 0 failed" in out, out  # alice-restyle still adopted from the remote
    return out


def test_the_issue_case_a_sidecar_naming_a_manifest_leaves_it_identical(tmp_path: Path, seeded: Seeded) -> None:
    """Issue 24's first case, as a user tried it: a fresh clone's `apply --auto-approve` after the sidecar's first
    file became `../../manifests/alice.yaml`; the manifest stays byte-identical (`_untouched` hashes all)."""
    clone = _clone(tmp_path, seeded)
    manifest = (clone.root / "manifests/alice.yaml").read_bytes()

    def hostile(data: dict[str, Any]) -> None:
        data["images"][0]["file"] = "../../manifests/alice.yaml"

    _skips(
        clone, hostile, "image 1: '../../manifests/alice.yaml' climbs out of its folder (`..`), not a plain file name"
    )
    assert (clone.root / "manifests/alice.yaml").read_bytes() == manifest


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_a_sidecar_naming_a_file_outside_its_folder_is_skipped(case: str, tmp_path: Path, seeded: Seeded) -> None:
    clone = _clone(tmp_path, seeded)
    name, problem = HOSTILE_NAMES[case]
    name = name.format(outside=clone.outside.as_posix().lstrip("/"))

    def hostile(data: dict[str, Any]) -> None:
        data["images"][0]["file"] = name

    _skips(clone, hostile, problem)


SIDECAR_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "identity-not-of-its-request": (
        lambda d: d["request"]["request"].update(prompt="something else"),
        "is not the hash of the request it records",
    ),
    "identity-not-its-key": (lambda d: d.update(identity="0" * 64), "but is stored as"),
    "hash-not-hex": (lambda d: d["images"][0].update(sha256="../" * 20 + "abcd"), "is not a sha256"),
    "older-writer": (lambda d: d.pop("task_type"), "no task type or request to check its identity against"),
    "huge-file-list": (
        lambda d: d.update(images=[{"file": f"x-{n}.png", "sha256": "0" * 64} for n in range(20_000)]),
        "too large for a sidecar",
    ),
}


@pytest.mark.parametrize("case", sorted(SIDECAR_CASES))
def test_a_sidecar_that_fails_a_check_is_skipped(case: str, tmp_path: Path, seeded: Seeded) -> None:
    change, problem = SIDECAR_CASES[case]
    _skips(_clone(tmp_path, seeded), change, problem)


def test_a_truncated_sidecar_is_skipped(tmp_path: Path, seeded: Seeded) -> None:
    clone = _clone(tmp_path, seeded)
    raw = clone.sidecar().read_bytes()
    clone.sidecar().write_bytes(raw[: len(raw) // 2])
    out = _skips(clone, None, "")
    assert ": it is not valid JSON (truncated or corrupt: " in out, out


def test_an_image_whose_bytes_do_not_hash_to_their_name_writes_nothing(tmp_path: Path, seeded: Seeded) -> None:
    """The sidecar is sound, so the plan adopts; the fetch finds the object's bytes replaced: the generation fails
    (exit 1) naming the object, before any of its files is written or its adoption recorded."""
    clone = _clone(tmp_path, seeded)
    digest = json.loads(clone.sidecar().read_text())["images"][1]["sha256"]
    (clone.remote / "files/sha256" / digest[:2] / digest[2:]).write_bytes(b"not the image")
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve"))
    assert code == 1, out + err
    shown = f"file://{clone.remote}/files/sha256/{digest[:2]}/{digest[2:]}"
    assert f"the outputs remote's object {shown} does not hash to its name" in out + err, out + err
    assert not (clone.root / OUTPUT).exists()
    state = json.loads((clone.root / "state/state.json").read_text())
    assert f"Generation/{GEN}" not in state["resources"]


def test_pwned_path_from_the_issue_blames_the_remote_object(tmp_path: Path, seeded: Seeded) -> None:
    """Issue 24's second case, as a user would try it: nothing written anywhere, and the message names the outputs
    remote's object, not the state."""
    clone = _clone(tmp_path, seeded)
    up = "../" * len(clone.root.parts)
    target = clone.outside / "PWNED.png"

    def hostile(data: dict[str, Any]) -> None:
        data["images"][0]["file"] = up + target.as_posix().lstrip("/")

    clone.edit_sidecar(hostile)
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve"))
    assert code == 0, out + err
    assert not target.exists()
    assert f"Warning: the outputs remote's object file://{clone.sidecar()}: image 1: " in out, out
    assert "the state" not in out + err, out + err


# ------------------------------------------------------------------------------------------ a shared state

STATE_CASES: dict[str, tuple[Callable[[dict[str, Any], str], None], str]] = {
    "dot-dot": (lambda e, h: e["files"][0].update(path=f"{OUTPUT}/../../manifests/alice.yaml"), "files[0].path"),
    "absolute": (lambda e, h: e["files"][0].update(path="/tmp/PWNED.png"), "files[0].path"),
    "manifest": (lambda e, h: e["files"][0].update(path="manifests/alice.yaml"), "files[0].path"),
    "git-hook": (lambda e, h: e["files"][0].update(path=".git/hooks/pre-commit"), "files[0].path"),
    "hash": (lambda e, h: e["files"][0].update(sha256="zz"), "files[0].sha256"),
    "output": (lambda e, h: e.update(output="../elsewhere"), "output"),
    "history": (
        lambda e, h: e.update(history=[{"identity": h, "folder": ".git/hooks", "files": [e["files"][0]]}]),
        "history[0].folder",
    ),
}


def _hostile_state(seeded: Seeded, case: str) -> dict[str, Any]:
    data = json.loads(seeded.state.read_text())
    entry = data["resources"][f"Generation/{GEN}"]
    change, _ = STATE_CASES[case]
    change(entry, entry["identity"])
    return dict(data)


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_a_state_file_entry_that_fails_a_check_is_skipped(case: str, tmp_path: Path, seeded: Seeded) -> None:
    clone = _clone(tmp_path, seeded, with_state=True)
    (clone.root / "state/state.json").write_text(json.dumps(_hostile_state(seeded, case)))
    code, out, err = _untouched(clone, lambda: clone.run("pull"))
    field = STATE_CASES[case][1]
    assert code == 0, out + err
    assert f"Warning: the state's entry Generation/{GEN} ({field}): " in err, err
    assert f"Generation/{GEN}: fetched" not in out, out
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve"))
    assert code == 0, out + err
    assert f"Warning: the state's entry Generation/{GEN} ({field}): " in out, out


def test_a_state_entry_whose_output_folder_holds_the_manifests_writes_nothing(tmp_path: Path, seeded: Seeded) -> None:
    """Plain relative paths, so the entry passes the state's checks: the write guard refuses the folder."""
    clone = _clone(tmp_path, seeded, with_state=True)
    data = json.loads(seeded.state.read_text())
    entry = data["resources"][f"Generation/{GEN}"]
    entry["output"] = "manifests"
    entry["files"] = [{**f, "path": f"manifests/{f['path'].rpartition('/')[2]}"} for f in entry["files"]]
    (clone.root / "state/state.json").write_text(json.dumps(data))
    code, out, err = _untouched(clone, lambda: clone.run("pull"))
    assert code == 0, out + err
    assert (
        f"Warning: the state's entry Generation/{GEN} (output): the folder holds alice.yaml (manifests and settings "
        f"are never written over); skipped: Generation/{GEN} is treated as if it were not there\n"
    ) in err, err
    assert not list((clone.root / "manifests").glob("*.png"))
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve"))
    assert code == 1, out + err
    assert err == (
        f"Error: the state's entry Generation/{GEN} (output): the folder holds alice.yaml (manifests and settings are "
        "never written over); nothing was written\n"
    )


def test_a_forgotten_entry_naming_a_manifest_is_never_pruned(tmp_path: Path, seeded: Seeded) -> None:
    clone = _clone(tmp_path, seeded, with_state=True)
    data = json.loads(seeded.state.read_text())
    manifest = clone.root / "manifests/alice.yaml"
    files = [{"path": "manifests/alice.yaml", "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()}]
    forgotten = {"kind": "Forgotten", "name": "Generation/old", "identity": "0" * 64, "files": files}
    data["resources"]["Forgotten/Generation/old"] = forgotten
    (clone.root / "state/state.json").write_text(json.dumps(data))
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve", "--prune"))
    assert code == 0, out + err
    assert "Warning: the state's entry Forgotten/Generation/old (files[0].path): 'alice.yaml' is not an image" in out
    assert manifest.is_file()


@pytest.mark.parametrize("case", ["dot-dot", "manifest", "history"])
def test_a_postgres_entry_that_fails_a_check_is_skipped(
    case: str, tmp_path: Path, seeded: Seeded, postgres: Cluster
) -> None:
    clone = _clone(tmp_path, seeded)
    db = postgres.database()
    url = postgres.url(password=None, db=db)
    clone.project.use_postgres(url, SUPERUSER_PASSWORD)
    assert clone.project.state_url is not None
    with PostgresBackend(clone.project.state_url) as backend:
        backend.replace(State.model_validate(_hostile_state(seeded, case)))  # as a hostile writer would: unchecked
    code, out, err = _untouched(clone, lambda: clone.run("pull"))
    assert code == 0, out + err
    assert f"Warning: the state's entry Generation/{GEN} ({STATE_CASES[case][1]}): " in err, err
    code, out, err = _untouched(clone, lambda: clone.run("apply", "--auto-approve"))
    assert code == 0, out + err
    assert f"Warning: the state's entry Generation/{GEN} ({STATE_CASES[case][1]}): " in out, out

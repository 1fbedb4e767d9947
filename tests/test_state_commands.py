"""`state pull`, `state push`, `state migrate`, `state history` and `--workspace` through the CLI, on the file backend
and on a real PostgreSQL server: the exact text a user sees, refusals that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.state import GenerationEntry, ImageRecord, State
from reconciler.state.file import FileBackend, StateStore
from reconciler.state.postgres import PostgresBackend
from tests.reliability.cli_inprocess import run_main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RECONCILER_STATE_URL", "RECONCILER_WORKSPACE", "RECONCILER_OUTPUTS_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    store = StateStore(tmp_path / "state/state.json")
    store.state.images["a" * 64] = ImageRecord(assets_id="asset-1", format="png")
    store.state.put(GenerationEntry(name="portraits", identity="1" * 64, output="outputs/portraits"))
    store.save()
    store.save()  # serial 2, and a backup with serial 1
    return tmp_path


def _state(root: Path) -> State:
    return FileBackend(root / "state/state.json").read()


def test_pull_prints_the_state_and_a_kept_version(project: Path) -> None:
    code, out, err = run_main(["state", "pull"], project)
    assert (code, err) == (0, "")
    assert json.loads(out)["serial"] == 2 and "a" * 64 in json.loads(out)["images"]
    code, out, _ = run_main(["state", "pull", "--serial", "1"], project)
    assert code == 0 and json.loads(out)["serial"] == 1
    code, out, err = run_main(["state", "pull", "--serial", "9"], project)
    assert (code, out) == (1, "")
    assert err == (
        "Error: state/state.json: no version with serial 9 is kept (kept: serials 1 to 2; see "
        "`reconciler state history`)\n"
    )
    code, out, _ = run_main(["state", "history"], project)
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["2", "1"]


def test_push_refuses_another_lineage_or_an_older_serial_unless_forced(project: Path) -> None:
    other = State(serial=5)
    (project / "other.json").write_text(other.model_dump_json())
    code, out, err = run_main(["state", "push", "other.json"], project)
    assert (code, out) == (1, "")
    lineage = _state(project).lineage
    assert err == (
        f"Error: other.json has lineage {other.lineage}, but state/state.json has lineage {lineage}: they are "
        "different states. Nothing was pushed (--force replaces it anyway).\n"
    )
    older = _state(project)
    older.serial = 1
    older.images.clear()
    (project / "older.json").write_text(older.model_dump_json())
    code, _, err = run_main(["state", "push", "older.json"], project)
    assert code == 1 and "has serial 1, older than state/state.json (serial 2)" in err
    assert len(_state(project).images) == 1  # nothing changed
    code, out, err = run_main(["state", "push", "older.json", "--force"], project)
    assert (code, err) == (0, "")
    assert out == "Pushed older.json to state/state.json as serial 3.\n"
    assert _state(project).images == {} and _state(project).serial == 3
    same = _state(project)
    (project / "same.json").write_text(same.model_dump_json())
    code, out, _ = run_main(["state", "push", "same.json"], project)
    assert out == "state/state.json already holds exactly this state (serial 3); nothing pushed.\n"


def test_migrate_file_to_postgres_and_back(project: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _state(project)
    code, out, err = run_main(["state", "migrate", "--to", pg_url], project)
    assert (code, err) == (0, ""), err
    shown = pg_url.split("://", 1)[1].split(":", 1)[0]
    assert out.startswith(f"Copied the state (serial 2, lineage {source.lineage}: 1 resource, 1 image) from ")
    assert f"state/state.json to postgresql://{shown}:***@" in out and out.endswith(", and read it back: identical.\n")
    with PostgresBackend(pg_url) as backend:
        assert backend.read().model_dump() == source.model_dump()
    code, _, err = run_main(["state", "migrate", "--to", pg_url], project)
    assert code == 1 and "already holds a state (serial 2, lineage" in err and "--force replaces it" in err

    # and back, from the database (the project now points at it) to a new file
    monkeypatch.setenv("RECONCILER_STATE_URL", pg_url)
    code, out, err = run_main(["state", "migrate", "--to", "back/state.json"], project)
    assert (code, err) == (0, ""), err
    assert FileBackend(project / "back/state.json").read().model_dump() == source.model_dump()
    code, out, _ = run_main(["state", "list"], project)
    assert out == "Generation/portraits\tsucceeded\t0 images in outputs/portraits\n"


def test_workspaces_on_the_file_backend_live_beside_it(project: Path) -> None:
    code, out, err = run_main(["state", "push", "--workspace", "staging", "state/state.json"], project)
    assert (code, err) == (0, ""), err
    assert out == "Pushed state/state.json to state/state.json.d/staging/state.json as serial 2.\n"
    assert FileBackend(project / "state/state.json.d/staging/state.json").read().serial == 2
    code, out, _ = run_main(["state", "list", "--workspace", "staging"], project)
    assert out.startswith("Generation/portraits\t")
    code, out, _ = run_main(["state", "list", "--workspace", "empty"], project)
    assert (code, out) == (0, "")


def _with_an_untrusted_entry(root: Path) -> str:
    """The project's state with a Generation entry whose file leaves its output folder, written as a shared
    state could hold it (not through the store, which never writes one)."""
    path = root / "state/state.json"
    data = json.loads(path.read_text())
    data["resources"]["Generation/escapes"] = {
        "kind": "Generation",
        "name": "escapes",
        "identity": "2" * 64,
        "output": "outputs/escapes",
        "files": [{"path": "outputs/escapes/../../reconciler.yaml", "sha256": "b" * 64}],
    }
    path.write_text(json.dumps(data, indent=1))
    return path.read_text()


def test_an_entry_that_fails_a_check_is_named_by_list_show_and_pull_and_can_be_removed(project: Path) -> None:
    raw = _with_an_untrusted_entry(project)
    problem = (
        "Warning: the state's entry Generation/escapes (files[0].path): 'outputs/escapes/../../reconciler.yaml' "
        "leaves its folder (an empty, `.` or `..` part); {how}, but a plan treats Generation/escapes as if it were "
        "not there (fix the entry, or `reconciler state rm Generation/escapes`)\n"
    )
    code, out, err = run_main(["state", "list"], project)
    assert (code, out, err) == (0, "Generation/portraits\tsucceeded\t0 images in outputs/portraits\n",
                                problem.format(how="left out of this list"))  # fmt: skip
    code, out, err = run_main(["state", "show", "Generation/escapes"], project)
    assert code == 0 and json.loads(out)["files"][0]["path"] == "outputs/escapes/../../reconciler.yaml"
    assert err == problem.format(how="shown as stored")
    code, out, err = run_main(["state", "pull"], project)
    assert code == 0 and err == problem.format(how="printed as stored")
    assert list(json.loads(out)["resources"]) == ["Generation/escapes", "Generation/portraits"]
    assert (project / "state/state.json").read_text() == raw  # reading changed nothing
    (project / "pulled.json").write_text(out)
    code, out, err = run_main(["state", "push", "pulled.json", "--force"], project)
    assert (code, out) == (1, "")
    assert err == (
        "Error: pulled.json: the state's entry Generation/escapes (files[0].path): "
        "'outputs/escapes/../../reconciler.yaml' leaves its folder (an empty, `.` or `..` part). Nothing was "
        "pushed: fix the entry or remove it from pulled.json (a state is never written with an entry a plan would "
        "not trust).\n"
    )
    assert (project / "state/state.json").read_text() == raw
    code, out, err = run_main(["state", "rm", "Generation/escapes"], project)
    assert (code, out, err) == (0, "Removed Generation/escapes from the state.\n", "")
    assert "escapes" not in (project / "state/state.json").read_text()
    code, out, err = run_main(["state", "list"], project)
    assert (code, err) == (0, "")


def test_an_entry_that_fails_a_check_in_postgres_is_named_and_removed_by_state_rm(
    project: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on a shared state in PostgreSQL: the row that fails a check is named, and `state rm` deletes it."""
    import psycopg

    assert run_main(["state", "migrate", "--to", pg_url], project)[0] == 0
    monkeypatch.setenv("RECONCILER_STATE_URL", pg_url)
    bad = {"kind": "Generation", "name": "escapes", "identity": "2" * 64, "output": "outputs/escapes",
           "files": [{"path": "outputs/escapes/../../reconciler.yaml", "sha256": "b" * 64}]}  # fmt: skip
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO reconciler_entries (workspace, section, key, since, data) VALUES (%s, %s, %s, %s, %s)",
            ("default", "resources", "Generation/escapes", 2, json.dumps(bad)),
        )
    code, out, err = run_main(["state", "list"], project)
    assert (code, out) == (0, "Generation/portraits\tsucceeded\t0 images in outputs/portraits\n")
    assert err.startswith("Warning: the state's entry Generation/escapes (files[0].path): ")
    code, out, err = run_main(["state", "rm", "Generation/escapes"], project)
    assert (code, out, err) == (0, "Removed Generation/escapes from the state.\n", "")
    code, out, err = run_main(["state", "list"], project)
    assert (code, out, err) == (0, "Generation/portraits\tsucceeded\t0 images in outputs/portraits\n", "")

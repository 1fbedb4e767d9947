"""`reconciler state mv`: the pure move (a table, the plain rename first) and the command's exact text."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.state import GenerationEntry, HistoryRecord, ModelEntry, State
from reconciler.state.file import FileBackend, StateStore
from reconciler.state.moves import apply_move, plan_move
from tests.reliability.cli_inprocess import run_main


def _state() -> State:
    state = State()
    state.put(GenerationEntry(name="portraits", identity="1" * 64, output="outputs/portraits", task_id="t1"))
    state.put(ModelEntry(name="alice-v1", identity="2" * 64, task_name="alice-v1-22222222", model_name="m.safetensors"))
    state.put(
        GenerationEntry(
            name="grid[seed=1]",
            matrix="grid",
            axes=[("seed", 1)],
            identity="3" * 64,
            history=[HistoryRecord(identity="4" * 64, folder="outputs/grid/seed=1/history/444444444444")],
        )
    )
    return state


def test_a_rename_keeps_everything_the_entry_records_but_its_name() -> None:
    state = _state()
    before = state.resources["Generation/portraits"]
    move = plan_move(state, "Generation/portraits", "Generation/faces")
    apply_move(state, move)
    assert "Generation/portraits" not in state.resources
    after = state.resources["Generation/faces"]
    assert after.name == "faces"
    assert after.model_dump(exclude={"name"}) == before.model_dump(exclude={"name"})


def test_a_member_moves_with_its_axes_and_a_member_becomes_a_plain_resource() -> None:
    state = _state()
    apply_move(state, plan_move(state, "Generation/grid[seed=1]", "Generation/grid[steps=20,seed=1]"))
    entry = state.resources["Generation/grid[seed=1,steps=20]"]  # axes in their canonical order
    assert isinstance(entry, GenerationEntry)
    assert (entry.matrix, entry.axes, len(entry.history)) == ("grid", [("seed", 1), ("steps", 20)], 1)
    apply_move(state, plan_move(state, "Generation/grid[seed=1,steps=20]", "Generation/single"))
    single = state.resources["Generation/single"]
    assert isinstance(single, GenerationEntry) and (single.matrix, single.axes) == (None, [])


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (
            "Generation/portraits",
            "LoraModel/portraits",
            "cannot move Generation/portraits to LoraModel/portraits: an entry keeps its kind (Generation); "
            "use an address like Generation/portraits",
        ),
        (
            "Generation/nope",
            "Generation/other",
            "Generation/nope is not in the state; `reconciler state list` shows what it holds",
        ),
        (
            "Generation/portraits",
            "Generation/grid[seed=1]",
            "Generation/grid[seed=1] is already in the state; `reconciler state rm Generation/grid[seed=1]` first "
            "if it should go, or choose another address",
        ),
        (
            "Generation/portraits",
            "Generation/portraits",
            "Generation/portraits is already at that address; nothing to move",
        ),
        (
            "portraits",
            "Generation/x",
            "FROM 'portraits' is not an address; write Kind/name with Kind one of Dataset, LoraModel, Generation "
            "(e.g. Generation/alice-portraits)",
        ),
        (
            "Generation/portraits",
            "Generation/Faces",
            "TO 'Generation/Faces': 'Faces' is not a valid name ([a-z0-9][a-z0-9-]{0,62}, as in the manifests)",
        ),
    ],
)
def test_a_move_that_cannot_be_done_says_why_and_changes_nothing(source: str, target: str, message: str) -> None:
    state = _state()
    before = state.model_dump()
    with pytest.raises(ReconcilerError) as raised:
        plan_move(state, source, target)
    assert str(raised.value) == message
    assert state.model_dump() == before


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RECONCILER_STATE_URL", "RECONCILER_WORKSPACE", "RECONCILER_OUTPUTS_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    store = StateStore(tmp_path / "state/state.json")
    store.state = _state()
    store.save()
    return tmp_path


def test_state_mv_moves_and_saves_once_and_dry_run_changes_nothing(project: Path) -> None:
    serial = FileBackend(project / "state/state.json").read().serial
    code, out, err = run_main(["state", "mv", "--dry-run", "Generation/portraits", "Generation/faces"], project)
    assert (code, out, err) == (0, "Would move Generation/portraits to Generation/faces in the state.\n", "")
    assert FileBackend(project / "state/state.json").read().serial == serial
    code, out, err = run_main(["state", "mv", "Generation/portraits", "Generation/faces"], project)
    assert (code, out, err) == (0, "Moved Generation/portraits to Generation/faces in the state.\n", "")
    after = FileBackend(project / "state/state.json").read()
    assert after.serial == serial + 1 and "Generation/faces" in after.resources
    code, out, err = run_main(["state", "mv", "Generation/portraits", "Generation/faces"], project)
    assert (code, out) == (1, "")
    assert err == "Error: Generation/portraits is not in the state; `reconciler state list` shows what it holds\n"
    assert FileBackend(project / "state/state.json").read().serial == serial + 1

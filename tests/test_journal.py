"""The local journal of paid task ids (reconciler.state.journal) over the real file backend: written before a commit,
removed once every line reached the state, kept and replayed by the next command otherwise, refused for another
state; and `state push JOURNAL` through the CLI, with the exact text a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import GenerationEntry, ModelEntry, State
from reconciler.state.file import FileBackend, StateStore
from reconciler.state.journal import JournaledBackend, Record, journal_folder, read_journal, replay
from reconciler.status import Status
from tests.reliability.cli_inprocess import run_main

IDENTITY = "1" * 64


def backend(root: Path) -> JournaledBackend:
    path = root / "state/state.json"
    return JournaledBackend(FileBackend(path), journal_folder(path), "state-default")


def journals(root: Path) -> list[Path]:
    return sorted((root / "state/journal").glob("*.jsonl"))


def running(name: str = "portraits", task_id: str = "task-1", identity: str = IDENTITY) -> GenerationEntry:
    return GenerationEntry(name=name, identity=identity, status=Status.RUNNING, task_id=task_id)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RECONCILER_STATE_URL", "RECONCILER_WORKSPACE", "RECONCILER_OUTPUTS_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    store = StateStore(tmp_path / "state/state.json")
    store.state.put(GenerationEntry(name="portraits", identity=IDENTITY, status=Status.SUBMITTING))
    store.save()
    return tmp_path


def test_a_paid_task_id_is_journaled_before_its_commit_and_the_journal_goes_once_it_is_written(root: Path) -> None:
    with backend(root) as b:
        store = b.open()
        store.state.put(running())
        store.journal()
        [path] = journals(root)
        [record] = read_journal(path)
        assert (record.entry.task_id, record.entry.status, record.serial) == ("task-1", "running", 1)
        assert record.lineage == store.state.lineage
        store.save()
        store.journal()  # nothing new: no second line
        assert len(read_journal(path)) == 1
    assert journals(root) == []
    assert FileBackend(root / "state/state.json").read().generation("portraits").task_id == "task-1"  # type: ignore[union-attr]


def test_a_journal_whose_commit_never_came_is_kept_replayed_by_a_read_and_consumed_by_the_next_command(
    root: Path,
) -> None:
    with backend(root) as b:
        store = b.open()
        store.state.put(running())
        store.journal()  # the process dies before its commit
    [path] = journals(root)
    on_disk = FileBackend(root / "state/state.json")
    assert on_disk.read().generation("portraits").status == "submitting"  # type: ignore[union-attr]
    with backend(root) as b:
        assert b.read().generation("portraits").task_id == "task-1"  # type: ignore[union-attr]
    assert path.exists()  # a read replays in memory only
    with backend(root) as b:
        store = b.open()
        assert store.state.generation("portraits").task_id == "task-1"  # type: ignore[union-attr]
        assert b.replayed.put == ["Generation/portraits"]
    assert on_disk.read().generation("portraits").task_id == "task-1"  # type: ignore[union-attr]
    assert journals(root) == []


def test_a_live_writers_journal_is_replayed_but_left_to_it(root: Path) -> None:
    first = backend(root)
    store = first.open()
    store.state.put(running())
    store.journal()  # its writer still runs (holds the journal's flock)
    with backend(root) as second:
        assert second.open().state.generation("portraits").task_id == "task-1"  # type: ignore[union-attr]
    assert len(journals(root)) == 1
    first.close()


def test_replay_puts_what_the_state_lacks_and_leaves_what_it_moved_past() -> None:
    state = State(serial=5)
    state.put(GenerationEntry(name="waiting", identity=IDENTITY, status=Status.UNANSWERED))
    state.put(ModelEntry(name="m", identity=IDENTITY, status=Status.TRAINING, task_id="t-m"))
    state.put(running("moved-on", task_id="t-new"))
    state.put(running("redefined", task_id=None, identity="2" * 64))  # type: ignore[arg-type]
    done = ModelEntry(name="m", identity=IDENTITY, status=Status.SUCCEEDED, task_id="t-m", model_name="lora.st")
    records = [
        Record(state.lineage, 4, e)
        for e in (running("waiting", "t-w"), running("gone", "t-g"), done, running("moved-on", "t-old"))
    ]
    records.append(Record(state.lineage, 5, running("redefined", "t-r")))
    put = replay(state, records, Path("j.jsonl"), "the state")
    assert put == ["Generation/gone", "Generation/waiting", "LoraModel/m"]
    assert state.model("m").model_name == "lora.st"  # type: ignore[union-attr]
    assert state.generation("moved-on").task_id == "t-new"  # type: ignore[union-attr]
    assert state.generation("redefined").task_id is None  # type: ignore[union-attr]
    assert replay(state, records, Path("j.jsonl"), "the state") == []  # twice changes nothing


def test_a_journal_of_another_state_or_a_newer_serial_is_refused_unless_forced() -> None:
    state = State(serial=3, lineage="mine")
    other = [Record("theirs", 2, running())]
    with pytest.raises(StateError) as refused:
        replay(state, other, Path("state/journal/j.jsonl"), "state/state.json")
    assert str(refused.value) == (
        "state/journal/j.jsonl: this journal of paid task ids was written for another state (lineage theirs, serial 2) "
        "than state/state.json holds (lineage mine, serial 3); nothing was replayed. If the state was restored or "
        "moved, point --state/--workspace at the one it belongs to; to record its tasks here anyway, run "
        "`reconciler state push state/journal/j.jsonl --force`. Keep the file until its tasks are recorded."
    )
    with pytest.raises(StateError, match="for a newer version of this state"):
        replay(state, [Record("mine", 4, running())], Path("j.jsonl"), "s")
    assert replay(state, other, Path("j.jsonl"), "s", force=True) == ["Generation/portraits"]


def test_a_torn_last_line_is_ignored_and_a_bad_line_before_it_refused(tmp_path: Path) -> None:
    good = Record("l", 1, running()).line()
    path = tmp_path / "j.jsonl"
    path.write_bytes(good + good[:30])
    assert len(read_journal(path)) == 1
    path.write_bytes(good + b"{not json\n" + good)
    with pytest.raises(StateError, match=r"j.jsonl:2: not a journal line"):
        read_journal(path)


def test_state_push_replays_a_journal_carried_from_another_machine(root: Path, tmp_path: Path) -> None:
    lineage = FileBackend(root / "state/state.json").read().lineage
    carried = tmp_path / "carried.jsonl"
    carried.write_bytes(Record(lineage, 1, running()).line())
    code, out, err = run_main(["state", "push", str(carried)], root)
    assert (code, err) == (0, "")
    assert out == f"Replayed the journal {carried} into state/state.json (serial 2): recorded 1 paid task.\n"
    code, out, err = run_main(["state", "push", str(carried)], root)
    assert out == f"Replayed the journal {carried} into state/state.json (serial 2): it held nothing new.\n"
    carried.write_bytes(Record("elsewhere", 1, running("other")).line())
    code, out, err = run_main(["state", "push", str(carried)], root)
    assert (code, out) == (1, "") and "was written for another state" in err
    assert json.loads((root / "state/state.json").read_text())["serial"] == 2

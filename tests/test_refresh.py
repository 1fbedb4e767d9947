"""`reconciler refresh` records what finished or failed remotely, and nothing else."""

from __future__ import annotations

from reconciler.observe.facts import AccountGeneration
from reconciler.observe.refresh import record_remote
from tests.planner_fixtures import generation, generation_entry, model, model_entry, remote, remote_task, state

M = model()
G = generation(loras=())


def test_nothing_changed_is_no_change() -> None:
    s = state(model_entry(M, status="training"), generation_entry(G, {}, status="running"))
    assert record_remote(s, remote(remote_task(M, status="TRAINING")), "now") == []
    assert s.resources["LoraModel/alice"].status == "training"


def test_finished_training_is_recorded_with_its_model() -> None:
    s = state(model_entry(M, status="training"))
    lines = record_remote(s, remote(remote_task(M)), "now")
    entry = s.resources["LoraModel/alice"]
    assert (entry.status, entry.model_name, entry.updated_at) == ("succeeded", remote_task(M).model_name, "now")
    assert lines == ["LoraModel/alice: succeeded (SUCCESS, SERVING)"]


def test_submitted_but_unrecorded_training_is_found_by_name() -> None:
    s = state(model_entry(M, status="submitting", task_id=None))
    lines = record_remote(s, remote(remote_task(M, status="QUEUING", task_id="t-9")), "now")
    assert (s.resources["LoraModel/alice"].status, s.resources["LoraModel/alice"].task_id) == ("training", "t-9")
    assert lines == ["LoraModel/alice: training (QUEUING)"]


def test_failures_are_recorded() -> None:
    s = state(model_entry(M, status="training"), generation_entry(G, {}, status="running"))
    failed = {"g-1": AccountGeneration("g-1", "TASK_STATUS_FAILED", "nsfw detected")}
    lines = record_remote(s, remote(remote_task(M, status="CANCELED"), generations=failed), "now")
    assert lines == ["Generation/portraits: failed (nsfw detected)", "LoraModel/alice: failed (CANCELED)"]
    assert s.resources["LoraModel/alice"].reason == "ended CANCELED"


def test_a_converged_project_needs_no_status_call_after_the_list() -> None:
    from reconciler.novita import TrainingList, TrainingTask
    from reconciler.observe.refresh import settled

    listed = TrainingList([TrainingTask(task_id="t-1", task_name="alice", task_status="SUCCESS")], pages=3)
    done = settled(state(model_entry(M), generation_entry(G, {})), listed)
    assert done is not None and [t.task_id for t in done.trainings] == ["t-1"] and done.generations == {}
    assert done.pages == 3  # the pages the server sent, whatever their size
    running = TrainingList([TrainingTask(task_id="t-1", task_name="alice", task_status="TRAINING")], pages=1)
    assert settled(state(model_entry(M, status="training")), running) is None  # its progress is asked for
    assert settled(state(generation_entry(G, {}, status="running", task_id="g-1")), listed) is None

"""Planner tables: (desired, state, remote, outputs) -> actions. The no-op row first."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler.observe.facts import AccountGeneration, OutputFacts, RemoteSidecar
from reconciler.plan import reasons as r
from reconciler.plan.changes import Plan
from reconciler.plan.inputs import Inputs
from reconciler.plan.lora_models import decide_model
from reconciler.plan.planner import plan
from reconciler.plan.policy import SubmitPolicy
from reconciler.state import State
from tests.planner_fixtures import (
    INTACT,
    dataset,
    dataset_entry,
    desired,
    generation,
    generation_entry,
    model,
    model_entry,
    remote,
    remote_task,
    state,
    trained_name,
)

DS = dataset()
M = model(ds=DS)
M2 = model(ds=DS, steps=800)  # the same model, definition changed
G = generation()
NAMES = {"alice": trained_name(M)}
G_DONE = generation_entry(G, NAMES)
DS_DONE = dataset_entry(DS)
ALL_UPLOADED = tuple(i.sha256 for i in DS.images)
SHAPE = r.Shape(images=2, task_type="txt2img", width=512, height=384)
SERVING = r.TaskStatus("SUCCESS", model_status="SERVING")


@dataclass
class Row:
    id: str
    desired: list[Any]
    state: State
    remote: Any
    expected: list[tuple[str, str, r.Reason]]  # (address, action, reason)
    outputs: dict[str, OutputFacts] = field(default_factory=lambda: {"Generation/portraits": INTACT})
    summary: str | None = None
    fetches: tuple[tuple[str, int], ...] = ()
    stores: tuple[tuple[str, int], ...] = ()


ROWS = [
    Row(
        "no-op: everything trained, generated and on disk",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M), foreign=250),
        [],
        summary="No changes. Novita matches the manifests.",
    ),
    Row(
        "no-op offline: --no-refresh trusts the state",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        None,
        [],
    ),
    Row(
        "first plan: everything is created",
        [DS, M, G],
        state(),
        remote(foreign=3),
        [
            ("Dataset/photos", "create", r.UploadsNeeded(new=3, already=0, changed=False)),
            ("LoraModel/alice", "create", r.NewTraining(M.task_name, images=3)),
            ("Generation/portraits", "create", r.WaitsForModels(SHAPE, models=("alice",))),
        ],
        summary="Plan: 3 images to upload, 1 model to train, 1 generation to run (2 images), 0 to forget.",
    ),
    Row(
        "state lost: a trained model is adopted, its generation adopted from disk",
        [DS, M, G],
        state(),
        remote(remote_task(M)),
        [
            ("Dataset/photos", "create", r.NothingToUpload(images=3, changed=False)),
            ("LoraModel/alice", "adopt", r.FoundInAccount(M.task_name, SERVING, finished=True)),
            ("Generation/portraits", "adopt", r.FoundOnDisk(images=2, folder="out/portraits")),
        ],
        outputs={
            "Generation/portraits": OutputFacts(
                files_intact=False, sidecar_identity=G_DONE.identity, sidecar_files=(("a", "b"), ("c", "d"))
            )
        },
        summary="Plan: 0 images to upload, 0 models to train, 2 to adopt, 0 generations to run, 0 to forget.",
    ),
    Row(
        "state lost, outputs gone: adopt the model, generate again",
        [DS, M, G],
        state(),
        remote(remote_task(M)),
        [
            ("Dataset/photos", "create", r.NothingToUpload(images=3, changed=False)),
            ("LoraModel/alice", "adopt", r.FoundInAccount(M.task_name, SERVING, finished=True)),
            ("Generation/portraits", "create", r.NewGeneration(SHAPE)),
        ],
        outputs={},
    ),
    Row(
        "definition changed: retrain, regenerate, upload nothing",
        [DS, M2, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("LoraModel/alice", "replace", r.DefinitionChanged(M2.task_name)),
            ("Generation/portraits", "replace", r.ModelsPending(("alice",), retrained=True)),
        ],
        summary="Plan: 0 images to upload, 1 model to train, 1 generation to run (2 images), 0 to forget.",
    ),
    Row(
        "training in flight: resume, never create",
        [DS, M, G],
        state(DS_DONE, model_entry(M, status="training"), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="TRAINING")),
        [
            ("LoraModel/alice", "resume", r.TrainingInFlight(M.task_name, r.TaskStatus("TRAINING"))),
            ("Generation/portraits", "create", r.WaitsForModels(SHAPE, ("alice",))),
        ],
    ),
    Row(
        "training finished while we were away: record it, then generate",
        [DS, M, G],
        state(DS_DONE, model_entry(M, status="training"), uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("LoraModel/alice", "resume", r.TrainingFinished(M.task_name, SERVING)),
            ("Generation/portraits", "create", r.NewGeneration(SHAPE)),
        ],
        outputs={},
    ),
    Row(
        "submitted but never recorded (killed after the POST): found by name, adopted",
        [DS, M],
        state(DS_DONE, model_entry(M, status="submitting", task_id=None), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="QUEUING")),
        [
            ("LoraModel/alice", "resume", r.UnansweredInFlight(M.task_name, r.TaskStatus("QUEUING"))),
        ],
    ),
    Row(
        "submitting and not in the account: look it up again at apply, then create",
        [DS, M],
        state(DS_DONE, model_entry(M, status="submitting", task_id=None), uploaded=ALL_UPLOADED),
        remote(),
        [
            ("LoraModel/alice", "create", r.UnansweredNotListed(M.task_name)),
        ],
    ),
    Row(
        "unanswered create (500 CREATE_TASK_FAILED) that did make the task: resume it, never create",
        [DS, M],
        state(DS_DONE, model_entry(M, status="unanswered", task_id=None), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="TRAINING", task_id="ghost")),
        [
            ("LoraModel/alice", "resume", r.UnansweredInFlight(M.task_name, r.TaskStatus("TRAINING"))),
        ],
    ),
    Row(
        "unanswered create whose task already finished: record it",
        [DS, M, G],
        state(DS_DONE, model_entry(M, status="unanswered", task_id=None), uploaded=ALL_UPLOADED),
        remote(remote_task(M, task_id="ghost")),
        [
            ("LoraModel/alice", "resume", r.TrainingFinished(M.task_name, SERVING)),
            ("Generation/portraits", "create", r.NewGeneration(SHAPE)),
        ],
        outputs={},
    ),
    Row(
        "unanswered create whose task FAILED: that was the training, retrain",
        [DS, M],
        state(DS_DONE, model_entry(M, status="unanswered", task_id=None), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="FAILED", task_id="ghost")),
        [
            ("LoraModel/alice", "replace", r.TrainingEnded(M.task_name, "FAILED")),
        ],
    ),
    Row(
        "unanswered retrain: the FAILED task of the same name from before is not its answer",
        [DS, M],
        state(
            DS_DONE,
            model_entry(M, status="unanswered", task_id=None, prior_tasks=["old"]),
            uploaded=ALL_UPLOADED,
        ),
        remote(remote_task(M, status="FAILED", task_id="old")),
        [
            ("LoraModel/alice", "create", r.UnansweredNotListed(M.task_name)),
        ],
    ),
    Row(
        "unanswered create, planned offline: look it up at apply, never resubmit",
        [DS, M],
        state(DS_DONE, model_entry(M, status="unanswered", task_id=None), uploaded=ALL_UPLOADED),
        None,
        [
            ("LoraModel/alice", "resume", r.UnansweredLookup(M.task_name)),
        ],
    ),
    Row(
        "unanswered generation submit, default policy: submit again, said to maybe pay twice",
        [DS, M, G],
        state(
            DS_DONE,
            model_entry(M),
            generation_entry(G, NAMES, status="unanswered", task_id=None),
            uploaded=ALL_UPLOADED,
        ),
        remote(remote_task(M)),
        [
            ("Generation/portraits", "replace", r.UnansweredResubmit()),
        ],
        summary="Plan: 0 images to upload, 0 models to train, 1 generation to run (2 images), 0 to forget.",
    ),
    Row(
        "remote FAILED: replace",
        [DS, M],
        state(DS_DONE, model_entry(M, status="training"), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="FAILED")),
        [
            ("LoraModel/alice", "replace", r.TrainingEnded(M.task_name, "FAILED")),
        ],
    ),
    Row(
        "remote CANCELED: replace",
        [DS, M],
        state(DS_DONE, model_entry(M, status="training"), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="CANCELED")),
        [
            ("LoraModel/alice", "replace", r.TrainingEnded(M.task_name, "CANCELED")),
        ],
    ),
    Row(
        "remote vanished: replace",
        [DS, M],
        state(DS_DONE, model_entry(M), uploaded=ALL_UPLOADED),
        remote(foreign=5),
        [
            ("LoraModel/alice", "replace", r.TrainingMissing(M.task_name, trained=True)),
        ],
    ),
    Row(
        "failed before, same definition, nothing remote: retrain",
        [DS, M],
        state(DS_DONE, model_entry(M, status="failed", reason="out of memory"), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="FAILED")),
        [
            ("LoraModel/alice", "replace", r.PreviousTrainingFailed(M.task_name, "out of memory", M.task_name)),
        ],
    ),
    Row(
        "one image added: uploads exactly one",
        [dataset(images=4), model(ds=dataset(images=4))],
        state(DS_DONE, model_entry(M), uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("Dataset/photos", "replace", r.UploadsNeeded(new=1, already=3, changed=True)),
            ("LoraModel/alice", "replace", r.DatasetChanged("photos", model(ds=dataset(images=4)).task_name)),
        ],
        summary="Plan: 1 image to upload, 1 model to train, 0 generations to run, 0 to forget.",
    ),
    Row(
        "prompt changed: regenerate only that generation",
        [DS, M, generation(prompt="a new photo")],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("Generation/portraits", "replace", r.GenerationChanged(SHAPE)),
        ],
    ),
    Row(
        "images deleted from disk: regenerate",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("Generation/portraits", "replace", r.ImagesMissing(missing=2, total=2, folder="out/portraits")),
        ],
        outputs={"Generation/portraits": OutputFacts(files_intact=False, missing=2)},
    ),
    Row(
        "generation in flight: resume",
        [DS, M, G],
        state(DS_DONE, model_entry(M), generation_entry(G, NAMES, status="running"), uploaded=ALL_UPLOADED),
        remote(
            remote_task(M),
            generations={"g-1": AccountGeneration("g-1", "TASK_STATUS_PROCESSING", progress=40)},
        ),
        [
            ("Generation/portraits", "resume", r.GenerationInFlight("g-1", "TASK_STATUS_PROCESSING", 40)),
        ],
    ),
    Row(
        "generation failed remotely: run again",
        [DS, M, G],
        state(DS_DONE, model_entry(M), generation_entry(G, NAMES, status="running"), uploaded=ALL_UPLOADED),
        remote(remote_task(M), generations={"g-1": AccountGeneration("g-1", "TASK_STATUS_FAILED", "nsfw")}),
        [
            ("Generation/portraits", "replace", r.GenerationFailed("g-1", "nsfw")),
        ],
    ),
    Row(
        "removed from the manifests: forget, say what stays",
        [DS],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("LoraModel/alice", "forget", r.ForgetModel(M.task_name, trained_name(M), in_flight=False)),
            ("Generation/portraits", "forget", r.ForgetGeneration(images=2, prune=False)),
        ],
        summary="Plan: 0 images to upload, 0 models to train, 0 generations to run, 2 to forget.",
    ),
    Row(
        "a public LoRA only: generation identity known at plan time",
        [generation(loras=())],
        state(),
        remote(),
        [
            ("Generation/portraits", "create", r.NewGeneration(SHAPE)),
        ],
        outputs={},
    ),
    Row(
        "outputs remote, no-op: on disk and in the remote",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [],
        outputs={"Generation/portraits": OutputFacts(files_intact=True, remote=True, in_remote=True)},
        summary="No changes. Novita matches the manifests.",
    ),
    Row(
        "outputs remote, fresh runner: missing here, in the remote: no change, fetch (free)",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [],
        outputs={"Generation/portraits": OutputFacts(files_intact=False, missing=2, remote=True, in_remote=True)},
        fetches=(("Generation/portraits", 2),),
    ),
    Row(
        "outputs remote configured later: on disk, not in the remote: no change, store",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [],
        outputs={"Generation/portraits": OutputFacts(files_intact=True, remote=True, in_remote=False)},
        stores=(("Generation/portraits", 2),),
    ),
    Row(
        "outputs remote, images neither here nor there: regenerate",
        [DS, M, G],
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        [
            ("Generation/portraits", "replace", r.ImagesMissing(missing=2, total=2, folder="out/portraits")),
        ],
        outputs={"Generation/portraits": OutputFacts(files_intact=False, missing=2, remote=True)},
    ),
    Row(
        "state lost, outputs only in the remote: adopt the model, adopt the generation from the remote's sidecar",
        [DS, M, G],
        state(),
        remote(remote_task(M)),
        [
            ("Dataset/photos", "create", r.NothingToUpload(images=3, changed=False)),
            ("LoraModel/alice", "adopt", r.FoundInAccount(M.task_name, SERVING, finished=True)),
            ("Generation/portraits", "adopt", r.FoundInOutputsRemote(images=2)),
        ],
        outputs={
            "Generation/portraits": OutputFacts(
                files_intact=False,
                remote=True,
                remote_sidecars=(RemoteSidecar(G_DONE.identity, (("a", "b"), ("c", "d")), "g-1"),),
            )
        },
    ),
    Row(
        "another team's trainings with similar names are left alone",
        [DS, M],
        state(DS_DONE, model_entry(M), uploaded=ALL_UPLOADED),
        remote(remote_task(M), remote_task(M, name="alice-deadbeef", task_id="x", status="FAILED"), foreign=120),
        [],
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_planner_table(row: Row) -> None:
    result = plan(desired(*row.desired), row.state, row.remote, row.outputs)
    assert [(c.address, c.action, c.reason) for c in result.changes] == row.expected
    if row.summary is not None:
        from reconciler.present.render import summary_line

        assert summary_line(result) == row.summary
    assert (result.fetches, result.stores) == (row.fetches, row.stores)


def test_attribute_diff_shows_old_and_new() -> None:
    result = plan(desired(DS, M2), state(DS_DONE, model_entry(M), uploaded=ALL_UPLOADED), remote(remote_task(M)))
    change = result.get("LoraModel/alice")
    assert change is not None
    assert [(a.path, a.before, a.after) for a in change.changes] == [("expert_setting.max_train_steps", 500, 800)]
    assert change.notes == (r.OldModelStays(trained_name(M)),)


def test_cascade_shows_lora_known_after_apply() -> None:
    result = plan(desired(DS, M2, G), state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED), remote())
    change = result.get("Generation/portraits")
    assert change is not None
    assert [(a.path, a.before, a.after) for a in change.changes] == [
        ("loras[0].model_name", trained_name(M), "(known after apply)")
    ]


def test_target_limits_plan_to_dependencies() -> None:
    other = generation("other", loras=())
    result = plan(desired(DS, M, G, other), state(), remote(), targets=["LoraModel/alice"])
    assert [c.address for c in result.changes] == ["Dataset/photos", "LoraModel/alice"]


def test_uploads_counted_per_hash_not_per_dataset() -> None:
    shared = dataset("a")
    same_images = dataset("b")
    m1, m2 = model("one", ds=shared), model("two", ds=same_images)
    result = plan(desired(shared, same_images, m1, m2), state(), remote())
    assert result.uploads == 3


def test_plan_is_deterministic() -> None:
    from reconciler.present.render import render_json, render_text

    inputs = (desired(DS, M, G, generation("b", loras=())), state(), remote(foreign=10))
    first: Plan = plan(*inputs)
    again: Plan = plan(*inputs)
    assert render_text(first) == render_text(again)
    assert render_json(first) == render_json(again)


HELD = dataclasses.replace(G, on_unanswered_submit="hold")  # an expensive one: its spec says hold
RESUBMIT = dataclasses.replace(G, on_unanswered_submit="resubmit")


@pytest.mark.parametrize(
    ("gen", "policy", "outcome"),
    [
        (G, SubmitPolicy(), "resubmit"),  # the default
        (G, SubmitPolicy(project="hold"), "hold"),  # apply.on_unanswered_submit: hold in reconciler.yaml
        (HELD, SubmitPolicy(), "hold"),  # the Generation's spec wins over the project default...
        (RESUBMIT, SubmitPolicy(project="hold"), "resubmit"),
        (HELD, SubmitPolicy(run="resubmit"), "resubmit"),  # ...and the flag, a choice for this run, over both
        (G, SubmitPolicy(run="hold"), "hold"),
    ],
)
def test_unanswered_generation_submit_follows_the_policy(gen: Any, policy: SubmitPolicy, outcome: str) -> None:
    entry = generation_entry(G, NAMES, status="submitting", task_id=None)
    inputs = (desired(DS, M, gen), state(DS_DONE, model_entry(M), entry, uploaded=ALL_UPLOADED), remote(remote_task(M)))
    result = plan(*inputs, policy=policy)
    if outcome == "resubmit":
        assert [(c.address, c.action) for c in result.changes] == [("Generation/portraits", "replace")]
        assert result.changes[0].reason == r.UnansweredResubmit()
        assert result.changes[0].paid and result.changes[0].reason.may_pay_twice
        assert result.warnings == ()
        return
    assert result.changes == ()
    assert result.warnings == (r.HeldUnanswered("Generation/portraits"),)
    forced = plan(*inputs, replace=["Generation/portraits"], policy=policy)
    assert [(c.address, c.action) for c in forced.changes] == [("Generation/portraits", "replace")]
    assert forced.warnings == ()


def test_the_policy_is_not_part_of_a_generations_identity() -> None:
    assert HELD.identity(NAMES) == G.identity(NAMES) == RESUBMIT.identity(NAMES)
    assert HELD.attributes(NAMES) == G.attributes(NAMES)
    done = state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED)
    assert plan(desired(DS, M, HELD), done, remote(remote_task(M)), {"Generation/portraits": INTACT}).empty


def test_a_create_carries_the_tasks_of_its_name_known_when_planned() -> None:
    """A look-up after an unanswered create must not take an older task of the same name for its answer."""
    failed = remote_task(M, status="FAILED", task_id="old-failed")
    result = plan(
        desired(DS, M), state(DS_DONE, model_entry(M, status="failed"), uploaded=ALL_UPLOADED), remote(failed)
    )
    change = result.get("LoraModel/alice")
    assert change is not None and change.action == "replace" and change.known_tasks == ("old-failed",)
    fresh = plan(desired(DS, M), state(), remote(foreign=3)).get("LoraModel/alice")
    assert fresh is not None and fresh.known_tasks == ()
    offline = plan(desired(DS, M), state(), None).get("LoraModel/alice")
    assert offline is not None and offline.known_tasks is None


def test_replace_forces_a_retrain_and_cascades() -> None:
    result = plan(
        desired(DS, M, G),
        state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED),
        remote(remote_task(M)),
        {"Generation/portraits": INTACT},
        replace=["LoraModel/alice"],
    )
    assert [(c.address, c.action) for c in result.changes] == [
        ("LoraModel/alice", "replace"),
        ("Generation/portraits", "replace"),
    ]


def test_outputs_lines_say_what_is_free() -> None:
    from reconciler.present.render import render_text

    facts = OutputFacts(files_intact=False, missing=2, remote=True, in_remote=True)
    result = plan(
        desired(DS, M, G), state(DS_DONE, model_entry(M), G_DONE, uploaded=ALL_UPLOADED), None, {G.address: facts}
    )
    assert render_text(result) == (
        "Not refreshed (--no-refresh): planned from the state file alone.\n\n"
        "No changes. Novita matches the manifests.\n\n"
        "Outputs: 2 images to fetch from the outputs remote (free) for Generation/portraits: `reconciler pull` or "
        "`reconciler apply` writes them.\n"
    )


def test_a_resume_line_reads_as_a_wait_and_the_legend_names_only_the_symbols_used() -> None:
    from reconciler.present.render import render_text

    ds_done = dataset_entry(DS)
    waiting = plan(
        desired(DS, M, G),
        state(ds_done, model_entry(M, status="training"), uploaded=ALL_UPLOADED),
        remote(remote_task(M, status="TRAINING")),
    )
    text = render_text(waiting, legend=True)
    assert f"  ~ LoraModel/alice                  wait for training {M.task_name}, in flight (TRAINING); " in text
    assert text.endswith(
        "Plan: 0 images to upload, 0 models to train, 1 to wait for, 1 generation to run (2 images), 0 to forget.\n"
        "Symbols: + create, ~ wait for work in flight (not an update)\n"
    )
    assert "Symbols:" not in render_text(waiting)  # not in CI logs, pull-request comments or --out files


def test_paid_changes_are_the_trainings_and_generations_it_submits() -> None:
    first = plan(desired(DS, M, G), state(), remote(foreign=3))
    assert [(c.address, c.paid) for c in first.changes] == [
        ("Dataset/photos", False),  # uploads are free
        ("LoraModel/alice", True),
        ("Generation/portraits", True),
    ]
    assert [c.address for c in first.paid] == ["LoraModel/alice", "Generation/portraits"]
    waiting = plan(
        desired(DS, M), state(DS_DONE, model_entry(M, status="training"), uploaded=ALL_UPLOADED), remote(remote_task(M))
    )
    assert [(c.action, c.paid) for c in waiting.changes] == [("resume", False)] and waiting.paid == ()


@pytest.mark.parametrize(
    ("entry", "account", "action", "usable"),
    [
        (model_entry(M), remote(remote_task(M)), None, trained_name(M)),  # trained: its generations use it
        (model_entry(M, status="training"), remote(remote_task(M)), "resume", trained_name(M)),  # finished unseen
        (model_entry(M, status="training"), remote(remote_task(M, status="TRAINING")), "resume", None),
        (
            model_entry(M, status="unanswered", task_id=None),
            remote(remote_task(M, task_id="x")),
            "resume",
            trained_name(M),
        ),
        (model_entry(M, status="unanswered", task_id=None), None, "resume", None),
        (model_entry(M, status="failed"), remote(remote_task(M)), "adopt", trained_name(M)),
        (None, remote(remote_task(M, status="QUEUING")), "adopt", None),
        (None, remote(), "create", None),
        (model_entry(M), remote(), "replace", None),  # gone from the account
    ],
)
def test_a_model_decision_says_what_its_generations_can_use(
    entry: Any, account: Any, action: str | None, usable: str | None
) -> None:
    inputs = Inputs(desired(DS, M), state(DS_DONE, *([entry] if entry else []), uploaded=ALL_UPLOADED), account)
    decision = decide_model(inputs, M)
    assert (decision.action, decision.usable) == (action, usable)

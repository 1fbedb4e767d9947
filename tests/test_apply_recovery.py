"""The applier in process picking up after a kill, a lost state or a lost answer, without paying twice.

Trainings are found again by their deterministic name, generations by the sidecar beside their images, a create
that got no answer is resolved by name before anything is sent again, and an image Novita no longer knows is
uploaded again, alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from reconciler.apply import Applier, ApplyOptions
from reconciler.apply.outcome import Failed, Held, NotInAccount, OutputsChanged, Task, Unanswered
from reconciler.commands.plan_apply import apply_command
from reconciler.commands.workspace import load_desired
from reconciler.novita import RetryInfo
from reconciler.plan import reasons as r
from reconciler.plan.changes import Plan
from reconciler.plan.planfile import save_plan
from reconciler.plan.planner import plan
from reconciler.plan.policy import SubmitPolicy
from reconciler.present import outcome as words
from reconciler.present.progress import Reporter
from reconciler.state import ImageRecord, ModelEntry, State
from reconciler.status import Status
from reconciler.text import plural
from tests.apply_world import FAST_POLL, KEY, Event, Recorder, World, sha256, sidecar, worlds
from tests.reliability.hostile_proxy import hostile_proxy


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., World]]:
    with worlds(tmp_path) as make:
        yield make


def lose_the_state(world: World) -> None:
    shutil.rmtree(world.root / "state")


# ---- a lost state: adopt -----------------------------------------------------------------------------------


def test_after_a_lost_state_trainings_are_adopted_by_name_and_generations_from_their_sidecars(
    make: Callable[..., World],
) -> None:
    world = make()
    desired = world.desired()
    world.apply()
    before = world.state()
    log = len(world.requests())
    lose_the_state(world)

    planned = world.plan()
    assert planned.actions() == {
        "Dataset/alice-photos": "create",
        "Dataset/bob-photos": "create",
        "Generation/alice-portraits": "adopt",
        "Generation/bob-portraits": "adopt",
        "Generation/landscape": "adopt",
        "LoraModel/alice": "adopt",
        "LoraModel/bob": "adopt",
    }
    applied = world.apply(planned)
    result = applied.result

    assert result.ok and (result.adopted, result.uploaded, result.trained, result.generated) == (5, 0, 0, 0)
    # nothing was paid for again: the only requests were the refresh's (and the balance before and after)
    assert {r["endpoint"] for r in world.requests()[log:]} == {"training-list", "balance"}
    state = world.state()
    for name in ("alice", "bob"):
        old, new = before.model(name), state.model(name)
        assert old is not None and new is not None and new.status == Status.SUCCEEDED
        assert (new.task_id, new.model_name, new.task_name) == (old.task_id, old.model_name, old.task_name)
        assert applied.events.messages("adopted", f"LoraModel/{name}") == [
            f"adopted training {desired.models[name].task_name} ({old.task_id})"
        ]
        assert applied.events.messages("task_done", f"LoraModel/{name}") == [
            f"training {desired.models[name].task_name} done: {old.model_name}"
        ]
    for name, count in (("alice-portraits", 3), ("bob-portraits", 1), ("landscape", 1)):
        old_gen, gen = before.generation(name), state.generation(name)
        assert old_gen is not None and gen is not None and gen.status == Status.SUCCEEDED
        assert (gen.identity, gen.task_id, gen.seed) == (old_gen.identity, old_gen.task_id, old_gen.seed)
        assert gen.files == old_gen.files and all(sha256(world.root / f.path) == f.sha256 for f in gen.files)
        assert gen.task_id == sidecar(world, f"outputs/{name}", name)["task_id"]
        assert applied.events.messages("adopted", f"Generation/{name}") == [
            f"adopted {plural(count, 'image')} in outputs/{name}"
        ]
    assert world.plan().plan.empty


def test_a_training_found_in_flight_after_a_lost_state_is_adopted_and_waited_for(make: Callable[..., World]) -> None:
    world = make(training_seconds=600)  # a long training: still on its way until the test moves the clock
    model = world.desired().models["alice"]
    targets = ("LoraModel/alice", "Generation/alice-portraits")
    world.apply(targets=targets, wait=False)
    lose_the_state(world)

    planned = world.plan(targets=targets)
    change = planned.plan.get("LoraModel/alice")
    assert change is not None and change.action == "adopt" and change.model_name is None
    assert isinstance(change.reason, r.FoundInAccount) and not change.reason.finished
    applied = world.apply(planned, on_event=world.jump_when_waiting(700))

    assert applied.result.ok and (applied.result.adopted, applied.result.trained, applied.result.generated) == (1, 0, 1)
    assert applied.events.messages("task_progress", "LoraModel/alice")[0].startswith(f"training {model.task_name} ")
    (task,) = world.training_named(model.task_name)
    assert world.created("training-create") == {model.task_name: 1}
    entry = world.state().model("alice")
    assert entry is not None and (entry.status, entry.task_id, entry.model_name) == (
        Status.SUCCEEDED,
        task["task_id"],
        task["model_name"],
    )
    (submit,) = world.requests("txt2img")
    assert submit["body_summary"]["loras"] == [task["model_name"]]  # generated with the adopted LoRA
    assert len(world.files("outputs/alice-portraits")) == 4


def test_adopting_images_that_changed_since_the_saved_plan_is_refused(
    make: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`apply PLANFILE` looks at the outputs again: a generation planned for adoption whose images changed
    since is refused (plan again), never recorded with files that are not what its sidecar says."""
    world = make()
    world.apply()
    lose_the_state(world)
    planfile = world.root / "adopt.plan"
    saved = world.plan().plan
    save_plan(saved, planfile)
    (world.root / "outputs/alice-portraits/alice-portraits-2.png").write_bytes(b"edited")
    log = len(world.requests())

    monkeypatch.setenv("NOVITA_API_KEY", KEY)
    monkeypatch.setenv("NOVITA_API_BASE", world.base_url)
    ui = UI()
    outcome = apply_command(world.settings(), ApplyOptions(**FAST_POLL), ui, planfile=planfile)

    result = outcome.result
    assert result is not None and not result.ok
    assert result.failed == {"Generation/alice-portraits": Failed(OutputsChanged("outputs/alice-portraits"))}
    assert result.adopted == 4  # the other generations and the two trainings
    assert world.state().entry("Generation/alice-portraits") is None
    assert {r["endpoint"] for r in world.requests()[log:]} <= {"training-list", "balance"}  # nothing submitted
    assert ui.shown == [saved]  # the saved plan is shown before it is applied, and nothing else
    assert (world.root / "outputs/alice-portraits/alice-portraits-2.png").read_bytes() == b"edited"


@dataclass
class UI:
    """An ApplyUI for a test: approves, records the events."""

    recorder: Recorder = field(default_factory=Recorder)
    shown: list[Plan] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def show_plan(self, plan: Plan) -> None:
        self.shown.append(plan)

    def confirm(self, plan: Plan) -> bool:
        return True

    def reporter(self) -> Reporter:
        return self.recorder

    def interrupted(self) -> None:
        self.notices.append("interrupted")


# ---- a kill between the create and its answer being recorded ------------------------------------------------


def submitting(*names: str) -> Callable[[State], None]:
    """As a kill right after a training create left the state: `submitting`, no task id."""

    def change(state: State) -> None:
        for name in names:
            entry = state.model(name)
            assert entry is not None
            entry.status, entry.task_id = Status.SUBMITTING, None

    return change


def test_resume_of_a_training_recorded_as_submitting_finds_it_by_name(make: Callable[..., World]) -> None:
    """An offline plan (no refresh) trusts the state: the applier looks the training up by its name, waits for
    it and records its task id; it submits nothing."""
    world = make(training_seconds=0.5)
    model = world.desired().models["alice"]
    world.apply(targets=("LoraModel/alice",), wait=False)
    world.change_state(submitting("alice"))

    planned = world.plan(targets=("LoraModel/alice",), offline=True)
    assert planned.actions() == {"LoraModel/alice": "resume"} and planned.plan.changes[0].task_id is None
    assert planned.plan.changes[0].reason == r.UnansweredLookup(model.task_name)
    result = world.apply(planned).result

    assert result.ok and (result.resumed, result.trained) == (1, 0)
    (task,) = world.training_named(model.task_name)
    entry = world.state().model("alice")
    assert entry is not None and (entry.status, entry.task_id) == (Status.SUCCEEDED, task["task_id"])
    assert world.created("training-create") == {model.task_name: 1}


def test_resume_of_a_training_that_never_reached_novita_fails_and_asks_to_plan_again(
    make: Callable[..., World],
) -> None:
    world = make()
    model = world.desired().models["alice"]
    world.apply(targets=("LoraModel/alice",))
    world.change_state(submitting("alice"))
    world.sim.account.trainings.clear()  # the create never arrived: Novita has no such training

    planned = world.plan(targets=("LoraModel/alice",), offline=True)
    result = world.apply(planned).result

    assert result.failed == {"LoraModel/alice": Failed(NotInAccount(Task.training(model.task_name)))}
    assert world.requests("training-create")[1:] == []  # the applier does not submit on its own
    # planned with a refresh, the same state is a create, looked up again before anything is sent
    change = world.plan(targets=("LoraModel/alice",)).plan.get("LoraModel/alice")
    assert change is not None and change.action == "create"
    assert change.reason == r.UnansweredNotListed(model.task_name)


# ---- a create that got no answer ---------------------------------------------------------------------------


def test_a_training_create_without_an_answer_that_landed_is_adopted_not_resubmitted(
    make: Callable[..., World],
) -> None:
    world = make()
    model = world.desired().models["alice"]
    planned = world.plan(targets=("LoraModel/alice", "Generation/alice-portraits"))
    world.faults(rates={"training-create": {"drop-after": 1.0}})  # Novita makes it, the answer is lost
    applied = world.apply(planned)

    assert applied.result.ok and applied.result.trained == 1 and applied.result.generated == 1
    (create,) = world.requests("training-create")
    assert (create["status"], create["fault"]) == (200, "drop-after")
    (task,) = world.training_named(model.task_name)
    entry = world.state().model("alice")
    assert entry is not None and (entry.status, entry.task_id) == (Status.SUCCEEDED, task["task_id"])
    assert entry.unanswered_submits == 1
    assert applied.events.messages("unanswered", "LoraModel/alice") == [
        f"no answer to the submit of {model.task_name} (RemoteProtocolError): looking it up by name before "
        "anything is sent again"
    ]
    assert applied.events.messages("task_submitted", "LoraModel/alice") == [
        f"no answer to the submit, but {model.task_name} is in the account ({task['task_id']}): "
        "taking it, not submitting again",
    ]


@pytest.mark.parametrize("answer", ["500", "CREATE_TASK_FAILED", "503", "drop"])
def test_a_training_create_answered_with_an_error_that_made_it_anyway_is_taken_not_resubmitted(
    make: Callable[..., World], answer: str
) -> None:
    """A gateway made the training, then answered 500 / 500 CREATE_TASK_FAILED / 503 / nothing: the answer
    says nothing was made, the account says otherwise; the name decides, even with a listing that lags."""
    world = make()
    model = world.desired().models["alice"]
    planned = world.plan(targets=("LoraModel/alice",))
    world.faults(specs=["training-create:ghost=1", f"ghost-answer={answer}", "list-lag=0.1"])
    applied = world.apply(planned)

    assert applied.result.ok and applied.result.trained == 1, applied.result.failed
    assert [r["fault"] for r in world.requests("training-create")] == [f"ghost-{answer}"]
    assert len(world.training_named(model.task_name)) == 1


def test_a_training_create_without_an_answer_that_did_not_land_is_submitted_once_more(
    make: Callable[..., World],
) -> None:
    """The create is dropped before Novita handles it. The applier lists the trainings (the first listing
    is refused with 429 and retried, which is when the network heals), does not find the name, and submits
    exactly once more."""
    world = make()
    model = world.desired().models["alice"]
    planned = world.plan(targets=("LoraModel/alice",))
    world.faults(rates={"training-create": {"drop": 1.0}, "training-list": {"429": 1.0}})

    def heal(info: RetryInfo) -> None:
        if info.url.startswith("/v3/training"):
            world.faults(reset=True)

    applied = world.apply(planned, on_retry=heal)

    assert applied.result.ok and applied.result.trained == 1
    creates = world.requests("training-create")
    assert [(r["status"], r["fault"]) for r in creates] == [(0, "drop"), (200, None)]
    (task,) = world.training_named(model.task_name)  # exactly one training exists
    entry = world.state().model("alice")
    assert entry is not None and (entry.status, entry.task_id) == (Status.SUCCEEDED, task["task_id"])
    assert applied.events.messages("task_submitted", "LoraModel/alice") == [
        f"training {model.task_name} submitted ({task['task_id']})"
    ]


def test_a_held_generation_submit_without_an_answer_is_never_resubmitted_on_its_own(
    make: Callable[..., World],
) -> None:
    """on_unanswered_submit: hold (an expensive generation): no answer, no second submit, a person decides."""
    world = make()
    planned = world.plan(targets=("Generation/landscape",))
    world.faults(rates={"txt2img": {"drop": 1.0}})
    result = world.apply(planned, policy=SubmitPolicy(project="hold")).result

    assert result.failed["Generation/landscape"] == Failed(Held("txt2img", "RemoteProtocolError"))
    assert len(world.requests("txt2img")) == 1 and not result.resubmitted
    entry = world.state().generation("landscape")
    assert entry is not None and entry.status == Status.UNANSWERED and entry.task_id is None
    assert (entry.unanswered_submits, entry.resubmits) == (1, 0)
    world.faults(reset=True)
    settings = world.settings(("Generation/landscape",))
    desired, _ = load_desired(settings)
    again = plan(desired, world.state(), None, {}, ("Generation/landscape",), policy=SubmitPolicy(project="hold"))
    assert again.empty and again.warnings == (r.HeldUnanswered("Generation/landscape"),)


def test_a_generation_submit_without_an_answer_is_submitted_again_and_counted(make: Callable[..., World]) -> None:
    """The default policy: submitted again after a pause, a few times in one apply, each counted (the summary,
    the events, the state); out of tries, the next apply submits it once more, as its plan says."""
    world = make()
    planned = world.plan(targets=("Generation/landscape",))
    world.faults(rates={"txt2img": {"drop": 1.0}})
    applied = world.apply(planned)
    result = applied.result

    assert result.failed["Generation/landscape"] == Failed(Unanswered(Task("txt2img", ""), 4, "RemoteProtocolError"))
    assert len(world.requests("txt2img")) == 4
    assert result.resubmitted == ["Generation/landscape"] * 3
    assert ", 3 resubmitted after no answer (may be paid twice) in " in words.summary(result)
    assert (
        applied.events.messages("resubmitted", "Generation/landscape")
        == ["the previous submit got no answer: submitting again (may be paid twice)"] * 3
    )
    entry = world.state().generation("landscape")
    assert entry is not None and entry.status == Status.UNANSWERED and entry.task_id is None
    assert (entry.unanswered_submits, entry.resubmits) == (4, 3)

    world.faults(reset=True)
    again = world.plan(targets=("Generation/landscape",))
    (change,) = again.plan.changes
    assert (change.action, change.reason) == ("replace", r.UnansweredResubmit())
    done = world.apply(again).result
    assert done.ok and done.resubmitted == ["Generation/landscape"] and done.generated == 1
    entry = world.state().generation("landscape")
    assert entry is not None and (entry.status, entry.unanswered_submits, entry.resubmits) == ("succeeded", 4, 4)
    assert sum(world.created("txt2img").values()) == 1  # drop: none of the four unanswered ones was made


# ---- images Novita does not know ---------------------------------------------------------------------------


def test_an_image_novita_no_longer_keeps_is_uploaded_again_alone(make: Callable[..., World]) -> None:
    """Novita dropped one image uploaded by an earlier apply (its retention is undocumented). Retraining after
    an edit sends the recorded ids; Novita rejects that one by name and only that image goes up again."""
    world = make()
    desired = world.desired()
    world.apply(targets=("LoraModel/alice",))
    first = desired.models["alice"].images[0].sha256
    before = world.state().images
    world.sim.account.assets.pop(before[first].assets_id)
    world.edit(
        "m/models.yaml",
        "woman, class_prompt: person, max_train_steps: 500",
        "woman, class_prompt: person, max_train_steps: 600",
    )
    puts = len(world.requests("upload"))

    planned = world.plan(targets=("LoraModel/alice",))
    assert planned.actions() == {"LoraModel/alice": "replace"} and planned.plan.uploads == 0
    applied = world.apply(planned)

    assert applied.result.ok and (applied.result.uploaded, applied.result.trained) == (1, 1)
    assert [r["status"] for r in world.requests("training-create")[1:]] == [400, 200]
    (put,) = world.requests("upload")[puts:]
    after = world.state().images
    assert put["body_summary"]["assets_id"] == after[first].assets_id != before[first].assets_id
    assert world.sim.account.asset(after[first].assets_id)["sha256"] == first  # type: ignore[index]
    assert {h: r.assets_id for h, r in after.items() if h != first} == {
        h: r.assets_id for h, r in before.items() if h != first
    }
    assert applied.events.messages("reupload", "LoraModel/alice") == [
        "Novita does not know 1 uploaded image(s): uploading them again"
    ]


def test_an_image_novita_forgets_right_after_this_apply_uploaded_it_is_uploaded_again(
    make: Callable[..., World],
) -> None:
    world = make()
    world.faults(asset_forget=1.0)  # the first create forgets the training's first image

    def heal(applier: Applier, event: Event) -> None:
        if event.name == "reupload":
            world.faults(reset=True)

    applied = world.apply(targets=("LoraModel/alice",), on_event=heal)

    assert applied.result.ok and (applied.result.uploaded, applied.result.trained) == (4, 1)
    creates = world.requests("training-create")
    assert [r["status"] for r in creates] == [400, 200]
    rejected, accepted = (r["body_summary"]["assets_ids"] for r in creates)
    assert rejected[0] != accepted[0] and rejected[1:] == accepted[1:]
    assert world.state().images[world.desired().models["alice"].images[0].sha256].assets_id == accepted[0]


def pending_tickets(world: World) -> tuple[str, str, str]:
    """As a kill mid-upload leaves things: image 1 has a ticket and its PUT went through, image 2 a ticket only
    (the PUT never completed), both recorded as pending; image 3 was not reached. Returns the three hashes."""
    images = world.desired().models["alice"].images
    ids = []
    for image in images[:2]:
        ticket = httpx.post(
            f"{world.sim.base_url}/v3/assets/training_dataset",
            json={"file_extension": "jpeg"},
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        ids.append(ticket["assets_id"])
        if image is images[0]:  # storage is presigned: no key goes there
            assert httpx.put(ticket["upload_url"], content=image.path.read_bytes()).status_code == 200

    def record(state: State) -> None:
        for image, assets_id in zip(images, ids, strict=False):
            state.images[image.sha256] = ImageRecord(assets_id=assets_id, format="jpeg", status="pending")

    world.change_state(record)
    return images[0].sha256, images[1].sha256, images[2].sha256


def test_pending_tickets_the_upload_that_went_through_is_used_the_other_is_sent_again(
    make: Callable[..., World],
) -> None:
    world = make()
    done, unsent, unreached = pending_tickets(world)
    ticketed = world.state().images
    puts = len(world.requests("upload"))

    planned = world.plan(targets=("LoraModel/alice",))
    assert planned.plan.uploads == 1  # only the image no ticket was recorded for
    applied = world.apply(planned)

    assert applied.result.ok and (applied.result.uploaded, applied.result.trained) == (2, 1)
    new = [r["body_summary"]["assets_id"] for r in world.requests("upload")[puts:]]
    images = world.state().images
    assert sorted(new) == sorted([images[unreached].assets_id, images[unsent].assets_id])
    assert images[done].assets_id == ticketed[done].assets_id  # its upload went through: not paid again
    assert images[unsent].assets_id != ticketed[unsent].assets_id
    (accepted,) = [r for r in world.requests("training-create") if r["status"] == 200]
    assert accepted["body_summary"]["assets_ids"] == [images[h].assets_id for h in (done, unsent, unreached)]


def test_when_novita_names_no_id_the_pending_uploads_are_sent_again(make: Callable[..., World]) -> None:
    """A refusal that says an assets_id is unknown without saying which: the images whose upload was never
    confirmed (pending tickets) go up again, not the ones known to be uploaded."""
    world = make()
    done, unsent, unreached = pending_tickets(world)
    puts = len(world.requests("upload"))

    def vague(method: str, path: str, status: int, body: bytes) -> tuple[int, bytes, dict[str, str]] | None:
        if method == "POST" and path.startswith("/v3/training/") and status == 400:
            text = b'{"code": 400, "reason": "INVALID_REQUEST_BODY", "message": "unknown assets_id", "metadata": {}}'
            return 400, text, {"Content-Type": "application/json"}
        return None

    with hostile_proxy(world.sim.base_url, vague) as proxy:
        world.base_url = proxy
        applied = world.apply(targets=("LoraModel/alice",))

    assert applied.result.ok and applied.result.trained == 1
    assert [r["status"] for r in world.requests("training-create")] == [400, 200]
    new = [r["body_summary"]["assets_id"] for r in world.requests("upload")[puts:]]
    images = world.state().images
    assert sorted(new) == sorted(images[h].assets_id for h in (done, unsent, unreached))
    assert applied.events.messages("reupload", "LoraModel/alice") == [
        "Novita does not know 2 uploaded image(s): uploading them again"
    ]
    assert all(isinstance(e, ModelEntry) and e.status == Status.SUCCEEDED for e in world.state().models())

"""The applier in process against the simulator: a whole apply, --no-wait and resume, downloads, prune, Ctrl-C.

Each test runs the real planner and `Applier.run` against `reconciler.sim` on a loopback socket (see
tests/apply_world.py) and checks what a person relies on: what Novita was asked and how many times, the state
file, the files on disk and their hashes, the result and the events the progress display is drawn from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.apply import Applier
from reconciler.apply.outcome import Postponed, StillRunning, Stopped
from reconciler.plan import reasons as r
from reconciler.present import outcome as words
from reconciler.state import GenerationEntry, ModelEntry, State
from reconciler.status import Status
from tests.apply_world import PROJECT, Event, World, plain_generation, sha256, sidecar, worlds

MODELS = ("alice", "bob")
PROMPTS = {
    "alice-portraits": "a portrait of ohwx woman",
    "bob-portraits": "a portrait of sks man",
    "landscape": "a mountain lake at dawn",
}


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., World]]:
    with worlds(tmp_path) as make:
        yield make


def test_first_apply_uploads_each_image_once_trains_generates_and_records_everything(
    make: Callable[..., World],
) -> None:
    world = make()
    desired = world.desired()
    applied = world.apply()
    result = applied.result

    assert result.ok and not result.failed and not result.skipped and not result.still_running
    assert (result.uploaded, result.trained, result.adopted, result.generated, result.images) == (5, 2, 0, 3, 5)
    # Novita was asked once for each thing: a1.jpg is in both datasets and went up once
    images = {i.sha256 for m in desired.models.values() for i in m.images}
    assert world.uploaded() == dict.fromkeys(images, 1)
    assert world.created("training-create") == {desired.models[m].task_name: 1 for m in MODELS}
    assert world.created("txt2img") == {p: 1 for p in PROMPTS.values()}
    # each training got the assets of its own dataset, in the dataset's order
    state = world.state()
    for record in world.requests("training-create"):
        model = next(m for m in desired.models.values() if m.task_name == record["body_summary"]["name"])
        assert record["body_summary"]["assets_ids"] == [state.images[i.sha256].assets_id for i in model.images]

    # the state: every resource succeeded, with the trained model Novita named and the files as written
    for name in MODELS:
        entry = state.model(name)
        assert entry is not None and entry.status == Status.SUCCEEDED
        (task,) = world.training_named(desired.models[name].task_name)
        assert (entry.task_id, entry.model_name) == (task["task_id"], task["model_name"])
    assert all(r.status == "uploaded" for r in state.images.values()) and set(state.images) == images
    for name, count in (("alice-portraits", 3), ("bob-portraits", 1), ("landscape", 1)):
        gen = state.generation(name)
        assert gen is not None and gen.status == Status.SUCCEEDED and gen.task_id
        on_disk = world.files(f"outputs/{name}")
        expected = [f"{name}-{i}.png" for i in range(1, count + 1)]
        assert sorted(on_disk) == sorted([*expected, f"{name}.reconciler.json"])
        assert [(f.path, f.sha256) for f in gen.files] == [(f"outputs/{name}/{n}", on_disk[n]) for n in expected]
        side = sidecar(world, f"outputs/{name}", name)
        assert (side["identity"], side["task_id"], side["seed"]) == (gen.identity, gen.task_id, gen.seed)
        assert side["images"] == [{"file": n, "sha256": on_disk[n]} for n in expected]
    portraits = state.generation("alice-portraits")
    assert portraits is not None and portraits.models == {"alice": state.model("alice").model_name}  # type: ignore[union-attr]
    # the generation used the LoRA this apply trained
    (submit,) = [r for r in world.requests("txt2img") if r["body_summary"]["prompt"] == PROMPTS["alice-portraits"]]
    assert submit["body_summary"]["loras"] == [portraits.models["alice"]]
    # the PNG carries its parameters for image viewers
    png = (world.root / "outputs/alice-portraits/alice-portraits-1.png").read_bytes()
    assert b"a portrait of ohwx woman\nNegative prompt: blurry\nSteps: " in png
    assert (
        f"Lora: {portraits.models['alice']}:0.7, Generation: Generation/alice-portraits ({portraits.task_id})".encode()
        in png
    )

    events = applied.events
    assert events.messages("apply_start") == ["Applying 7 changes."]
    assert sorted(str(e.address) for e in events.of("task_submitted")) == sorted(
        [*(f"LoraModel/{m}" for m in MODELS), *(f"Generation/{g}" for g in PROMPTS)]
    )
    assert len(events.of("image_written")) == 5 and len(events.of("upload")) == 5
    assert events.messages("task_done", "Generation/alice-portraits") == ["3 images in outputs/alice-portraits"]
    (done,) = events.of("apply_complete")
    assert done.message == words.summary(result)
    assert done.message.startswith("Apply complete: 5 uploaded, 2 trained, 0 adopted, 3 generated (5 images), 0 failed")
    assert done.data["images"] == 5 and done.data["failed"] == 0

    assert world.plan().plan.empty  # converged: the next plan has nothing to do


def test_resume_downloads_only_the_images_a_killed_apply_had_not_written(make: Callable[..., World]) -> None:
    """A kill after the first of three images was written: the state holds the task as running with that one
    file. The next apply waits for the same task (no second submit) and downloads only the other two."""
    world = make()
    world.apply()
    first = world.state().generation("alice-portraits")
    assert first is not None and first.task_id and len(first.files) == 3
    kept = world.root / first.files[0].path
    kept_bytes = kept.read_bytes()

    def killed_after_the_first_image(state: State) -> None:
        entry = state.generation("alice-portraits")
        assert entry is not None
        entry.status, entry.files = Status.RUNNING, entry.files[:1]

    world.change_state(killed_after_the_first_image)
    for f in first.files[1:]:
        (world.root / f.path).unlink()
    downloads_before = len(world.requests("download"))

    planned = world.plan()
    assert planned.actions() == {"Generation/alice-portraits": "resume"}
    applied = world.apply(planned)

    assert applied.result.ok and (applied.result.resumed, applied.result.generated, applied.result.images) == (1, 1, 2)
    new = world.requests("download")[downloads_before:]
    assert sorted(r["body_summary"]["file"] for r in new) == ["1.png", "2.png"]
    assert {r["body_summary"]["task_id"] for r in new} == {first.task_id}
    assert world.created("txt2img")[PROMPTS["alice-portraits"]] == 1  # the task was not submitted again
    assert kept.read_bytes() == kept_bytes  # the image already there was not rewritten
    entry = world.state().generation("alice-portraits")
    assert entry is not None and entry.status == Status.SUCCEEDED and entry.task_id == first.task_id
    assert [(f.path, f.sha256) for f in entry.files] == [(f.path, f.sha256) for f in first.files]
    assert all(sha256(world.root / f.path) == f.sha256 for f in entry.files)
    assert [e.data["path"] for e in applied.events.of("image_written")] == [f.path for f in first.files[1:]]


def test_no_wait_submits_and_returns_then_the_next_apply_resumes_without_resubmitting(
    make: Callable[..., World],
) -> None:
    world = make(training_seconds=600)  # a long training: still on its way until the test moves the clock
    desired = world.desired()
    applied = world.apply(wait=False)
    result = applied.result

    assert sorted(result.submitted_not_waited) == ["Generation/landscape", "LoraModel/alice", "LoraModel/bob"]
    assert result.deferred == {  # left for the next apply, as --no-wait asks: not a failure, not skipped
        f"Generation/{m}-portraits": Postponed(f"LoraModel/{m}") for m in MODELS
    }
    assert result.skipped == {} and result.ok
    assert ", 2 left for the next apply (waiting for trainings in flight) in " in words.summary(result)
    assert (result.trained, result.generated, result.images) == (0, 0, 0) and not result.failed
    state = world.state()
    for m in MODELS:
        entry = state.model(m)
        assert entry is not None and entry.status == Status.TRAINING and entry.task_id
    landscape = state.generation("landscape")
    assert landscape is not None and landscape.status == Status.RUNNING and not landscape.files
    assert not (world.root / "outputs").exists()
    # what is still running on Novita is said, with the task to find it by
    trainings = [StillRunning(f"LoraModel/{m}", desired.models[m].task_name) for m in MODELS]
    assert result.still_running == [StillRunning("Generation/landscape", landscape.task_id), *trainings]

    planned = world.plan()
    assert planned.actions() == {
        "Generation/alice-portraits": "create",
        "Generation/bob-portraits": "create",
        "Generation/landscape": "resume",
        "LoraModel/alice": "resume",
        "LoraModel/bob": "resume",
    }
    again = world.apply(planned, on_event=world.jump_when_waiting(700)).result
    assert again.ok and (again.resumed, again.trained, again.generated, again.images) == (3, 0, 3, 5)
    assert world.created("training-create") == {desired.models[m].task_name: 1 for m in MODELS}
    assert world.created("txt2img") == {p: 1 for p in PROMPTS.values()}
    assert world.uploaded().total() == 5
    final = world.state()
    assert all(e.status == Status.SUCCEEDED for e in final.resources.values() if e.kind != "Dataset")
    assert final.generation("landscape").task_id == landscape.task_id  # type: ignore[union-attr]


def test_interrupt_stops_waiting_lists_what_runs_on_and_saves_the_state(make: Callable[..., World]) -> None:
    """Ctrl-C once both trainings and the plain generation were accepted: the apply returns without waiting for
    them, says what keeps running (with the ids to find it), skips what depends on it, and the saved state
    lets the next apply wait for the same tasks instead of paying again."""
    world = make(training_seconds=60, generation_seconds=60)
    desired = world.desired()
    submitted: set[str] = set()

    def ctrl_c_when_all_submitted(applier: Applier, event: Event) -> None:
        if event.name == "task_submitted" and event.address:
            submitted.add(event.address)
            if len(submitted) == 3:
                applier.interrupt()

    applied = world.apply(on_event=ctrl_c_when_all_submitted)
    result = applied.result

    assert result.interrupted and not result.ok and not result.failed
    assert words.summary(result).startswith("Apply interrupted: 5 uploaded, 0 trained, 0 adopted, 0 generated")
    state = world.state()
    landscape = state.generation("landscape")
    assert landscape is not None and landscape.status == Status.RUNNING and landscape.task_id
    trainings = [StillRunning(f"LoraModel/{m}", desired.models[m].task_name) for m in MODELS]
    assert result.still_running == [StillRunning("Generation/landscape", landscape.task_id), *trainings]
    keeps_running = Stopped("interrupt", "waiting")  # it keeps running on Novita
    assert not result.skipped  # stopped by Ctrl-C is not a failure of anything
    assert result.stopped == {
        "LoraModel/alice": keeps_running,
        "LoraModel/bob": keeps_running,
        "Generation/landscape": keeps_running,
        "Generation/alice-portraits": Stopped("interrupt", "before-submit"),
        "Generation/bob-portraits": Stopped("interrupt", "before-submit"),
    }
    for m in MODELS:
        entry = state.model(m)
        assert isinstance(entry, ModelEntry) and entry.status == Status.TRAINING
        (task,) = world.training_named(desired.models[m].task_name)
        assert entry.task_id == task["task_id"]
    assert world.created("txt2img") == {PROMPTS["landscape"]: 1}
    (done,) = applied.events.of("apply_complete")
    assert done.message == words.summary(result) and (done.data["skipped"], done.data["stopped"]) == (0, 5)

    # the next apply waits for the same three tasks: nothing is submitted twice
    assert world.plan().actions() == {
        "Generation/alice-portraits": "create",
        "Generation/bob-portraits": "create",
        "Generation/landscape": "resume",
        "LoraModel/alice": "resume",
        "LoraModel/bob": "resume",
    }


@pytest.mark.timeout(45)
def test_interrupt_while_waiting_for_the_images_per_minute_budget_stops_at_once(make: Callable[..., World]) -> None:
    """With a budget of 1 image a minute the second generation waits for the first one's minute to pass.
    Ctrl-C must end that wait (it was submitted nowhere) instead of sleeping out the minute."""
    world = make()
    world.write({"m/more.yaml": plain_generation("skyline", "a city skyline at night")})
    targets = ("Generation/landscape", "Generation/skyline")

    def ctrl_c_after_the_first_submit(applier: Applier, event: Event) -> None:
        if event.name == "task_submitted":
            applier.interrupt()

    applied = world.apply(targets=targets, ipm={"txt2img": 1}, on_event=ctrl_c_after_the_first_submit)
    result = applied.result

    assert result.interrupted
    (first,) = applied.events.of("task_submitted")
    other = next(t for t in targets if t != first.address)
    assert first.address in targets
    assert result.stopped[other] == Stopped("interrupt", "before-submit")
    assert result.stopped[str(first.address)] == Stopped("interrupt", "waiting")
    assert sum(world.created("txt2img").values()) == 1
    assert world.state().entry(other) is None  # nothing recorded: it was never submitted


def test_prune_removes_only_the_files_a_forgotten_generation_wrote_unchanged(make: Callable[..., World]) -> None:
    world = make()
    world.edit("m/generations.yaml", "image_num: 1\n  seed: 11", "image_num: 3\n  seed: 11")
    world.apply()
    entry = world.state().generation("landscape")
    assert entry is not None and len(entry.files) == 3
    edited = world.root / entry.files[1].path
    edited.write_bytes(b"touched up by hand")  # changed since apply wrote it: must be kept
    world.write({"m/generations.yaml": str(PROJECT["m/generations.yaml"]).rsplit("---", 1)[0]})

    planned = world.plan(prune=True)  # `apply --prune` plans with --prune: it removes what that plan lists
    assert planned.actions() == {"Generation/landscape": "forget"}
    assert planned.plan.prune_kept == ("outputs/landscape/landscape-2.png",)
    applied = world.apply(planned)

    assert applied.result.ok and (applied.result.forgotten, applied.result.pruned) == (1, 3)  # 2 images, sidecar
    assert world.files("outputs/landscape") == {"landscape-2.png": sha256(edited)}  # sidecar and 2 images gone
    assert edited.read_bytes() == b"touched up by hand"
    assert applied.events.messages("forgotten", "Generation/landscape") == ["forgotten"]
    assert applied.events.messages("pruned") == ["pruned 3 files (kept 1 changed since they were written)"]
    state = world.state()
    assert state.entry("Generation/landscape") is None
    assert [(f.owner, [r.path for r in f.files]) for f in state.forgotten()] == [
        ("Generation/landscape", ["outputs/landscape/landscape-2.png"])  # kept on record: never removed unasked
    ]
    assert isinstance(state.entry("Generation/alice-portraits"), GenerationEntry)
    assert len(world.files("outputs/alice-portraits")) == 4  # the others' files are untouched
    assert words.summary(applied.result).startswith("Apply complete: 0 uploaded, 0 trained, 0 adopted, 0 generated")


def test_forget_without_prune_leaves_the_files(make: Callable[..., World]) -> None:
    world = make()
    world.apply()
    before = world.files("outputs/landscape")
    world.write({"m/generations.yaml": str(PROJECT["m/generations.yaml"]).rsplit("---", 1)[0]})

    applied = world.apply()

    assert applied.result.ok and (applied.result.forgotten, applied.result.pruned) == (1, 0)
    assert applied.events.messages("forgotten", "Generation/landscape") == ["forgotten"]
    assert world.files("outputs/landscape") == before and len(before) == 2
    assert world.state().entry("Generation/landscape") is None
    assert world.plan().plan.empty


def test_a_regenerated_generation_keeps_every_old_image_in_its_history(
    make: Callable[..., World],
) -> None:
    """3 images become 1 after an edit: all 3 paid images (one edited by hand since) and the sidecar move to
    history/<old identity>/ untouched; the new run writes landscape-1.png at its stable path."""
    world = make()
    world.edit("m/generations.yaml", "image_num: 1\n  seed: 11", "image_num: 3\n  seed: 11")
    world.apply()
    old_identity = world.state().generation("landscape").identity  # type: ignore[union-attr]
    edited = world.root / "outputs/landscape/landscape-3.png"
    edited.write_bytes(b"touched up by hand")
    old = world.files("outputs/landscape")
    world.edit("m/generations.yaml", "image_num: 3\n  seed: 11", "image_num: 1\n  seed: 12")

    planned = world.plan()
    assert planned.actions() == {"Generation/landscape": "replace"}
    assert planned.plan.changes[0].notes == (r.CurrentImagesToHistory(2),)  # the edited one is not ours
    applied = world.apply(planned)

    assert applied.result.ok and (applied.result.generated, applied.result.images) == (1, 1)
    now = world.files("outputs/landscape")
    assert sorted(now) == ["landscape-1.png", "landscape.reconciler.json"]
    assert now["landscape-1.png"] != old["landscape-1.png"]
    history = f"outputs/landscape/history/{old_identity[:12]}"
    assert world.files(history) == old  # every old file, the edited one too, byte for byte
    entry = world.state().generation("landscape")
    assert entry is not None and [(f.path, f.sha256) for f in entry.files] == [
        ("outputs/landscape/landscape-1.png", now["landscape-1.png"])
    ]
    [record] = entry.history
    assert (record.identity, record.folder, record.seed) == (old_identity, history, "11")
    assert sorted(f.path.rsplit("/", 1)[1] for f in record.files) == [
        "landscape-1.png",
        "landscape-2.png",
        "landscape-3.png",
    ]
    assert applied.result.moved_to_history == 3
    assert sidecar(world, "outputs/landscape", "landscape")["seed"] == "12"

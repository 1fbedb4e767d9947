"""The applier in process when Novita says no: failure isolation, rejected creates, unknown statuses.

One resource failing never stops the others; what failed says why in Novita's words; what depends on it is
skipped with the reason; an answer the applier does not understand ends the wait (never a hang) and leaves
the task recorded so the next apply looks at it again instead of paying for it twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.plan import reasons as r
from reconciler.status import Status
from tests.apply_world import World, sha256, worlds
from tests.manifest_helpers import image_bytes
from tests.reliability.hostile_proxy import hostile_proxy


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., World]]:
    with worlds(tmp_path) as make:
        yield make


def test_a_failed_training_skips_its_generations_and_everything_else_finishes(make: Callable[..., World]) -> None:
    world = make()
    world.faults(training_fail_pattern="^alice-", generation_fail_pattern="lake")
    desired = world.desired()
    alice = desired.models["alice"].task_name
    applied = world.apply()
    result = applied.result

    state = world.state()
    landscape = state.generation("landscape")
    assert landscape is not None and landscape.status == Status.FAILED and landscape.task_id
    assert landscape.reason and landscape.reason.startswith("TASK_FAILED: ")  # Novita's reason, kept
    assert result.failed == {
        "LoraModel/alice": f"training {alice} ended FAILED on Novita",
        "Generation/landscape": f"txt2img task {landscape.task_id} failed on Novita: {landscape.reason}",
    }
    assert result.skipped == {
        "Generation/alice-portraits": f"LoraModel/alice failed: training {alice} ended FAILED on Novita"
    }
    assert not result.ok and (result.trained, result.generated, result.images) == (1, 1, 1)
    assert result.summary().startswith(
        "Apply failed: 5 uploaded, 1 trained, 0 adopted, 1 generated (1 image), 2 failed, 1 skipped"
    )

    # the rest went on: bob trained and its generation was written
    bob = state.model("bob")
    assert bob is not None and bob.status == Status.SUCCEEDED
    assert sorted(world.files("outputs/bob-portraits")) == ["bob-portraits-1.png", "bob-portraits.reconciler.json"]
    # the state says what failed and why; nothing was submitted for the skipped generation
    entry = state.model("alice")
    assert entry is not None and (entry.status, entry.reason) == (Status.FAILED, "ended FAILED")
    assert state.entry("Generation/alice-portraits") is None
    assert "a portrait of ohwx woman" not in world.created("txt2img")
    assert not (world.root / "outputs/alice-portraits").exists() and not (world.root / "outputs/landscape").exists()

    events = applied.events
    assert sorted(str(e.address) for e in events.of("task_failed")) == ["Generation/landscape", "LoraModel/alice"]
    assert events.messages("task_failed", "LoraModel/alice") == [f"failed: training {alice} ended FAILED on Novita"]
    assert events.messages("skipped", "Generation/alice-portraits") == [
        f"skipped: LoraModel/alice failed: training {alice} ended FAILED on Novita"
    ]
    (done,) = events.of("apply_complete")
    assert (done.data["failed"], done.data["skipped"]) == (2, 1)

    # the next plan retrains and reruns only what failed, saying why
    reasons = {c.address: (c.action, c.reason) for c in world.plan().plan.changes}
    assert reasons == {
        "LoraModel/alice": ("replace", r.PreviousTrainingFailed(alice, "ended FAILED", alice)),
        "Generation/alice-portraits": ("create", r.WaitsForModels(r.Shape(3, "txt2img", 256, 256), ("alice",))),
        "Generation/landscape": ("replace", r.PreviousRunFailed(landscape.reason)),
    }


def test_a_rejected_generation_is_named_with_novitas_reason(make: Callable[..., World]) -> None:
    """The init image of an img2img generation is overwritten between the plan and the submit: Novita answers
    400 INVALID_IMAGE_FORMAT. That generation fails with Novita's words; the others are not affected."""
    world = make()
    world.write(
        {
            "img/init.png": image_bytes("PNG", seed=9),
            "m/restyle.yaml": """\
apiVersion: reconciler/v1
kind: Generation
metadata: {name: restyle}
spec:
  type: img2img
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: an oil painting of a lake
  init_image: ../img/init.png
  width: 256
  height: 256
  output: ../outputs/restyle
""",
        }
    )
    planned = world.plan(targets=("Generation/restyle", "Generation/landscape"))
    (world.root / "img/init.png").write_bytes(b"not an image any more")
    applied = world.apply(planned)
    result = applied.result

    detail = "400 INVALID_IMAGE_FORMAT: request.image_base64: not a png, jpeg or webp image"
    assert result.failed == {"Generation/restyle": f"Novita rejected Generation/restyle: {detail}"}
    assert result.generated == 1 and not result.skipped  # landscape was written all the same
    assert [r["status"] for r in world.requests("img2img")] == [400]  # asked once: a 400 is not retried
    entry = world.state().generation("restyle")
    assert entry is not None and entry.status == Status.FAILED and entry.task_id is None
    assert entry.reason == detail  # the state keeps Novita's reason, for the next plan and for people
    assert applied.events.messages("task_failed", "Generation/restyle") == [
        f"failed: Novita rejected Generation/restyle: {detail}"
    ]
    (world.root / "img/init.png").write_bytes(image_bytes("PNG", seed=9))
    change = world.plan().plan.get("Generation/restyle")
    assert change is not None and (change.action, change.reason) == ("replace", r.PreviousRunFailed(detail))


def test_a_training_novita_keeps_rejecting_fails_after_a_bounded_number_of_reuploads(
    make: Callable[..., World],
) -> None:
    """Novita forgets an uploaded image at every create (a simulator fault): the applier uploads the image it
    names again a few times, then gives up with Novita's message instead of looping."""
    world = make()
    world.faults(asset_forget=1.0)
    model = world.desired().models["alice"]
    applied = world.apply(targets=("LoraModel/alice",))
    result = applied.result

    creates = world.requests("training-create")
    assert [r["status"] for r in creates] == [400] * 5  # the first create and one per round of re-uploads
    forgotten = creates[-1]["body_summary"]["assets_ids"][0]
    message = result.failed["LoraModel/alice"]
    assert message == (
        "Novita rejected LoraModel/alice: 400 INVALID_REQUEST_BODY: "
        f'image_dataset_items[0].assets_id: unknown assets_id "{forgotten}"'
    )
    # each round sent a fresh upload of the image Novita named (the first) and reused the others
    firsts = [r["body_summary"]["assets_ids"][0] for r in creates]
    (others,) = {tuple(r["body_summary"]["assets_ids"][1:]) for r in creates}
    assert len(set(firsts)) == 5
    puts = [r["body_summary"] for r in world.requests("upload") if r["status"] == 200]
    assert sorted(p["assets_id"] for p in puts) == sorted([*firsts, *others])
    first = model.images[0].path.stat().st_size
    assert [p["bytes"] for p in puts if p["assets_id"] in firsts] == [first] * 5
    assert len(applied.events.of("reupload", "LoraModel/alice")) == 4
    entry = world.state().model("alice")
    assert entry is not None and entry.status == Status.FAILED
    assert entry.reason == message.removeprefix("Novita rejected LoraModel/alice: ")
    assert world.training_named(model.task_name) == []


def test_an_upload_that_keeps_failing_fails_its_training_and_the_next_apply_uploads_it(
    make: Callable[..., World],
) -> None:
    """Storage answers 500 to every PUT: the training fails naming the upload, the generation without a LoRA is
    written all the same. The upload tickets were recorded as pending; the next apply sends them, Novita
    rejects the never-uploaded ids by name, and exactly those images are uploaded."""
    world = make()
    world.faults(rates={"upload": {"5xx": 1.0}})
    desired = world.desired()
    applied = world.apply(targets=("LoraModel/alice", "Generation/landscape"))
    result = applied.result

    assert set(result.failed) == {"LoraModel/alice"}
    # named with the image and the storage's answer, not as if Novita had rejected the training
    assert re.fullmatch(
        r"could not upload img/alice/\w+\.jpg: Novita PUT http://127\.0\.0\.1/s3/\S+: 50[023] \w+: .+",
        result.failed["LoraModel/alice"],
    ), result.failed["LoraModel/alice"]
    assert result.generated == 1 and result.uploaded == 0
    assert world.requests("training-create") == []
    state = world.state()
    alice_images = {i.sha256 for i in desired.models["alice"].images}
    assert set(state.images) == alice_images and all(r.status == "pending" for r in state.images.values())

    world.faults(reset=True)
    again = world.apply(targets=("LoraModel/alice",)).result
    assert again.ok and again.trained == 1
    assert world.uploaded() == dict.fromkeys(alice_images, 1)
    creates = world.requests("training-create")
    # Novita names one never-uploaded id per refusal: each is uploaded once, then the create is accepted
    assert [r["status"] for r in creates] == [400, 400, 400, 200]
    assert all(r.status == "uploaded" for r in world.state().images.values())


# ---- answers the applier does not understand (a proxy rewrites the simulator's answers) ----------------------


def _json(data: Any) -> tuple[int, bytes, dict[str, str]]:
    return 200, json.dumps(data).encode(), {"Content-Type": "application/json"}


def _training_status(mutate: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    def rewrite(method: str, path: str, status: int, body: bytes) -> Any:
        if method == "GET" and path.startswith("/v3/training/subject") and status == 200:
            return _json(mutate(json.loads(body)))
        return None

    return rewrite


def _finished_task(mutate: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    def rewrite(method: str, path: str, status: int, body: bytes) -> Any:
        if method == "GET" and path.startswith("/v3/async/task-result") and status == 200:
            data = json.loads(body)
            if data["task"]["status"] == "TASK_STATUS_SUCCEED":
                return _json(mutate(data))
        return None

    return rewrite


STAYS_TRAINING = "it stays recorded as training and the next apply checks it again"
STAYS_RUNNING = "it stays recorded as running and the next apply checks it again"
ODD_ANSWERS = {
    "training-unknown-status": (
        _training_status(lambda d: {**d, "task_status": "EXPLODED"}),
        "LoraModel/alice",
        "training {task_name}: Novita reports an unknown status 'EXPLODED'; " + STAYS_TRAINING,
        Status.TRAINING,
    ),
    "training-serving-without-a-name": (
        _training_status(lambda d: {**d, "task_status": "SUCCESS", "models": [{"model_status": "SERVING"}]}),
        "LoraModel/alice",
        "training {task_name}: Novita reports it SERVING but names no model; " + STAYS_TRAINING,
        Status.TRAINING,
    ),
    "generation-unknown-status": (
        _finished_task(lambda d: {**d, "task": {**d["task"], "status": "TASK_STATUS_EXPLODED"}}),
        "Generation/landscape",
        "txt2img task {task_id}: Novita reports an unknown status 'TASK_STATUS_EXPLODED'; " + STAYS_RUNNING,
        Status.RUNNING,
    ),
    "generation-without-images": (
        _finished_task(lambda d: {**d, "images": []}),
        "Generation/landscape",
        "txt2img task {task_id} succeeded without images",
        Status.RUNNING,
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(ODD_ANSWERS))
def test_an_answer_the_applier_does_not_understand_ends_the_wait(make: Callable[..., World], case: str) -> None:
    rewrite, address, expected, status = ODD_ANSWERS[case]
    world = make()
    desired = world.desired()
    targets = ("LoraModel/alice", "Generation/alice-portraits") if address.startswith("LoraModel") else (address,)
    with hostile_proxy(world.sim.base_url, rewrite) as proxy:
        world.base_url = proxy
        result = world.apply(targets=targets).result

    entry = world.state().entry(address)
    assert entry is not None and entry.status == status  # not failed: the task may still be fine on Novita
    task_id = getattr(entry, "task_id", None)
    assert result.failed == {address: expected.format(task_name=desired.models["alice"].task_name, task_id=task_id)}
    if address == "LoraModel/alice":
        assert result.skipped == {"Generation/alice-portraits": f"LoraModel/alice failed: {result.failed[address]}"}
    assert sum(world.created("training-create").values()) + sum(world.created("txt2img").values()) == 1
    assert not any(p.suffix == ".png" for p in world.root.glob("outputs/*/*"))

    # the next apply (the answers are sane again) waits for the same task rather than submitting a new one
    world.base_url = world.sim.base_url
    planned = world.plan(targets=targets)
    assert planned.actions()[address] == "resume"
    again = world.apply(planned).result
    assert again.ok and sum(world.created("training-create").values()) + sum(world.created("txt2img").values()) == (
        2 if address.startswith("LoraModel") else 1
    )
    assert all(sha256(world.root / f.path) == f.sha256 for e in world.state().generations() for f in e.files)

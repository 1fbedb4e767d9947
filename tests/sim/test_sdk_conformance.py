"""The official novita-client 0.7.1 works unchanged against the simulator over a real socket."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from reconciler.sim.config import SimConfig
from reconciler.sim.server import RunningSimulator, running_simulator

novita_client = pytest.importorskip("novita_client")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningSimulator]:
    with running_simulator(SimConfig.fast(ipm_txt2img=0, ipm_img2img=0)) as sim:
        yield sim


@pytest.fixture
def client(server: RunningSimulator, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(novita_client.settings, "DEFAULT_POLL_INTERVAL", 0.01)
    return novita_client.NovitaClient("any-non-empty-key", base_url=server.base_url)


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (48, 48), (40 * i, 90, 200)) for i in range(n)]


def _wait_serving(client, task_id: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = client.query_training_subject_status(task_id)
        if status.task_status == "SUCCESS" and status.models and status.models[0].model_status == "SERVING":
            return status
        assert status.task_status in ("QUEUING", "TRAINING", "SUCCESS")
        time.sleep(0.01)
    raise AssertionError("training did not reach SERVING")


def test_upload_training_assets(client, server: RunningSimulator) -> None:  # type: ignore[no-untyped-def]
    ids = client.upload_training_assets(_images(3))
    assert len(ids) == 3 and all(server.account.assets[i]["uploaded"] for i in ids)
    assert all(server.account.assets[i]["ext"] == "jpeg" for i in ids)


def test_subject_training_with_default_components(client, server: RunningSimulator) -> None:  # type: ignore[no-untyped-def]
    task_id = client.create_training_subject(
        name="sdk-subject",
        base_model="v1-5-pruned-emaonly",
        images=_images(2),
        instance_prompt="a close photo of ohwx man",
        class_prompt="person",
        max_train_steps=500,
        components=novita_client.FACE_TRAINING_DEFAULT_COMPONENTS,
    )
    status = _wait_serving(client, task_id)
    assert status.model_type == "lora"
    assert status.models[0].model_name.startswith("model_")
    listed = client.list_training()
    assert listed.get_by_task_name("sdk-subject").task_id == task_id
    subjects = client.list_training("subject")
    assert {t.task_type for t in subjects} == {"subject"}


def test_style_training(client) -> None:  # type: ignore[no-untyped-def]
    task_id = client.create_training_style(
        name="sdk-style", base_model="v1-5-pruned-emaonly", images=_images(2), captions=["one", "two"],
        learning_rate="1e-4",
    )  # fmt: skip
    assert _wait_serving(client, task_id).task_status == "SUCCESS"  # the subject GET works for style ids
    assert {t.task_type for t in client.list_training("style")} == {"style"}


def test_txt2img_with_downloads(client) -> None:  # type: ignore[no-untyped-def]
    lora = novita_client.Txt2ImgV3LoRA(model_name="model_1_ABCDEF0123.safetensors", strength=0.7)
    result = client.txt2img_v3(
        model_name="realisticVisionV51_v51VAE_94301.safetensors", prompt="a lighthouse", image_num=2,
        width=256, height=384, seed=42, loras=[lora], response_image_type="jpeg", download_images=True,
    )  # fmt: skip
    assert result.task.status.value == "TASK_STATUS_SUCCEED"
    assert len(result.images_encoded) == 2
    with Image.open(io.BytesIO(base64.b64decode(result.images_encoded[0]))) as image:
        assert (image.format, image.size) == ("JPEG", (256, 384))
    again = client.async_task_result(result.task.task_id)
    assert again.task.task_id == result.task.task_id and len(again.images) == 2


def test_img2img_with_downloads(client) -> None:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    _images(1)[0].save(buffer, "PNG")
    result = client.img2img_v3(
        model_name="realisticVisionV51_v51VAE_94301.safetensors",
        input_image=base64.b64encode(buffer.getvalue()).decode(),
        prompt="make it blue",
        image_num=1,
        download_images=True,
    )
    assert len(result.images_encoded) == 1
    assert client.async_task_result(result.task.task_id).task.task_type == "IMG_TO_IMG"

"""txt2img / img2img: shapes, every validation rule, the state machine, real outputs, IPM limits."""

from __future__ import annotations

import base64
import io
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from sim_helpers import AUTH, Sim, generation_body, image_bytes, make_sim

from reconciler.sim.config import SimConfig


def test_task_result_shape_through_time(sim: Sim) -> None:
    task_id = sim.generate(seed=1234, image_num=2)
    queued = sim.result(task_id)
    assert queued["task"] == {
        "task_id": task_id,
        "task_type": "TXT_TO_IMG",
        "status": "TASK_STATUS_QUEUED",
        "reason": "",
        "eta": 1,
        "progress_percent": 0,
    }
    assert (queued["images"], queued["videos"], queued["audios"]) == ([], [], [])
    assert queued["extra"]["seed"] == "1234"
    assert queued["extra"]["debug_info"]["submit_time_ms"] == "1700000000000"
    sim.clock.advance(0.5)
    processing = sim.result(task_id)["task"]
    assert processing["status"] == "TASK_STATUS_PROCESSING"
    assert 0 < processing["progress_percent"] < 100
    sim.clock.advance(0.5)
    done = sim.result(task_id)
    assert done["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert done["extra"]["debug_info"]["complete_time_ms"] == "1700000001000"
    assert len(done["images"]) == 2
    for image in done["images"]:
        assert set(image) == {"image_url", "image_url_ttl", "image_type", "nsfw_detection_result"}
        assert image["image_url_ttl"] == "3600"
        assert image["image_type"] == "png"
        assert image["nsfw_detection_result"] is None
        assert parse_qs(urlsplit(image["image_url"]).query)["X-Amz-Expires"] == ["3600"]


@pytest.mark.parametrize("image_type", ["png", "jpeg", "webp"])
def test_outputs_are_real_images_of_the_requested_size(sim: Sim, image_type: str) -> None:
    body = generation_body(width=384, height=256, image_num=2)
    body["extra"]["response_image_type"] = image_type
    task_id = sim.post("/v3/async/txt2img", body).json()["task_id"]
    sim.clock.advance(5)
    images = sim.result(task_id)["images"]
    fetched = []
    for image in images:
        response = sim.client.get(image["image_url"])  # no Authorization header
        assert response.status_code == 200
        assert response.headers["content-type"] == f"image/{image_type}"
        with Image.open(io.BytesIO(response.content)) as img:
            assert img.size == (384, 256)
            assert img.format == {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[image_type]
        fetched.append(response.content)
    assert fetched[0] != fetched[1]  # index is drawn on the image


def _first_image(sim: Sim, **request: Any) -> bytes:
    task_id = sim.generate(**request)
    sim.clock.advance(5)
    url = sim.result(task_id)["images"][0]["image_url"]
    content: bytes = sim.client.get(url).content
    return content


def test_outputs_are_deterministic_and_differ_by_prompt_and_seed(sim: Sim) -> None:
    a = _first_image(sim, prompt="a cat", seed=7)
    assert _first_image(sim, prompt="a cat", seed=7) == a
    assert _first_image(sim, prompt="a dog", seed=7) != a
    assert _first_image(sim, prompt="a cat", seed=8) != a
    assert _first_image(sim, prompt="a cat", seed=7, loras=[{"model_name": "x", "strength": 0.5}]) != a


def test_random_seed_is_reported_as_string(sim: Sim) -> None:
    task_id = sim.generate(seed=-1)
    seed = sim.result(task_id)["extra"]["seed"]
    assert isinstance(seed, str) and int(seed) >= 0


def test_img2img_sdk_body_with_null_steps(sim: Sim) -> None:
    task_id = sim.generate("img2img")
    sim.clock.advance(5)
    result = sim.result(task_id)
    assert result["task"]["task_type"] == "IMG_TO_IMG"
    assert result["task"]["status"] == "TASK_STATUS_SUCCEED"
    assert sim.account.generations[task_id]["request"]["steps"] == 20


def test_extra_null_and_unknown_fields(sim: Sim) -> None:
    body = generation_body()
    body["extra"] = None
    body["request"]["extra"] = {}
    body["request"]["restore_faces"] = None
    body["whatever"] = 1
    assert sim.post("/v3/async/txt2img", body).status_code == 200


def test_output_url_rules(sim: Sim) -> None:
    task_id = sim.generate()
    sim.clock.advance(5)
    url = sim.result(task_id)["images"][0]["image_url"]
    with_key = sim.client.get(url, headers=AUTH)
    assert with_key.status_code == 400 and b"InvalidArgument" in with_key.content
    sim.clock.advance(3601)
    expired = sim.client.get(url)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    fresh = sim.result(task_id)["images"][0]["image_url"]  # each read presigns anew
    assert sim.client.get(fresh).status_code == 200


BIG_B64 = base64.b64encode(image_bytes("PNG", (4097, 4097))).decode()
NOT_IMAGE = base64.b64encode(b"not an image").decode()

GENERATION_CASES: list[tuple[str, str, Any, str, str]] = [
    ("txt2img", "width", 64, "INVALID_REQUEST_BODY", "request.width: must be in [128, 2048], got 64"),
    ("txt2img", "height", 4096, "INVALID_REQUEST_BODY", "request.height: must be in [128, 2048], got 4096"),
    ("txt2img", "width", None, "INVALID_REQUEST_BODY", "request.width: required"),
    ("txt2img", "image_num", 0, "INVALID_REQUEST_BODY", "request.image_num: must be in [1, 8], got 0"),
    ("txt2img", "image_num", 9, "INVALID_REQUEST_BODY", "request.image_num: must be in [1, 8], got 9"),
    ("txt2img", "steps", 0, "INVALID_REQUEST_BODY", "request.steps: must be in [1, 100], got 0"),
    ("txt2img", "steps", 101, "INVALID_REQUEST_BODY", "request.steps: must be in [1, 100], got 101"),
    ("txt2img", "steps", None, "INVALID_REQUEST_BODY", "request.steps: required"),
    ("txt2img", "guidance_scale", 0.5, "INVALID_REQUEST_BODY", "request.guidance_scale: must be in [1, 30], got 0.5"),
    ("txt2img", "guidance_scale", 31, "INVALID_REQUEST_BODY", "request.guidance_scale: must be in [1, 30], got 31"),
    ("txt2img", "sampler_name", "DPM++ Karras", "INVALID_REQUEST_BODY", "request.sampler_name: must be one of"),
    ("txt2img", "prompt", "", "INVALID_REQUEST_BODY", "request.prompt: required"),
    ("txt2img", "prompt", "x" * 1025, "INVALID_REQUEST_BODY", "request.prompt: length must be in [1, 1024], got 1025"),
    ("txt2img", "negative_prompt", "x" * 1025, "INVALID_REQUEST_BODY", "request.negative_prompt: length must be in"),
    ("txt2img", "model_name", None, "INVALID_REQUEST_BODY", "request.model_name: required"),
    ("txt2img", "seed", -2, "INVALID_REQUEST_BODY", "request.seed: must be >= -1, got -2"),
    ("txt2img", "loras", [{"model_name": "a", "strength": 0.5}] * 6, "INVALID_REQUEST_BODY",
     "request.loras: at most 5 items, got 6"),
    ("txt2img", "loras", [{"model_name": "a", "strength": 1.5}], "INVALID_REQUEST_BODY",
     "request.loras[0].strength: must be in [0, 1], got 1.5"),
    ("txt2img", "loras", [{"strength": 0.5}], "INVALID_REQUEST_BODY", "request.loras[0].model_name: required"),
    ("txt2img", "embeddings", [{"model_name": "e"}] * 6, "INVALID_REQUEST_BODY",
     "request.embeddings: at most 5 items, got 6"),
    ("txt2img", "clip_skip", 13, "INVALID_REQUEST_BODY", "request.clip_skip: must be in [1, 12], got 13"),
    ("txt2img", "hires_fix", {"target_width": 100, "target_height": 1024, "strength": 0.5}, "INVALID_REQUEST_BODY",
     "request.hires_fix.target_width: must be in [128, 4096], got 100"),
    ("txt2img", "hires_fix", {"target_width": 1024, "target_height": 5000, "strength": 0.5}, "INVALID_REQUEST_BODY",
     "request.hires_fix.target_height: must be in [128, 4096], got 5000"),
    ("txt2img", "refiner", {"switch_at": 2}, "INVALID_REQUEST_BODY",
     "request.refiner.switch_at: must be in [0, 1], got 2"),
    ("img2img", "image_base64", None, "INVALID_REQUEST_BODY", "request.image_base64: required"),
    ("img2img", "strength", 1.5, "INVALID_REQUEST_BODY", "request.strength: must be in [0, 1], got 1.5"),
    ("img2img", "image_base64", "%%%", "INVALID_IMAGE_FORMAT", "request.image_base64: not valid base64"),
    ("img2img", "image_base64", NOT_IMAGE, "INVALID_IMAGE_FORMAT", "request.image_base64: not a png, jpeg or webp"),
    ("img2img", "image_base64", BIG_B64, "IMAGE_EXCEEDS_MAX_RESOLUTION", "request.image_base64: image of 4097x4097"),
    ("img2img", "width", 2049, "INVALID_REQUEST_BODY", "request.width: must be in [128, 2048], got 2049"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "field", "value", "reason", "message"),
    GENERATION_CASES,
    ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(GENERATION_CASES)],
)
def test_generation_validation(sim: Sim, kind: str, field: str, value: Any, reason: str, message: str) -> None:
    body = generation_body(kind)
    body["request"][field] = value
    response = sim.post(f"/v3/async/{kind}", body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["code"], error["reason"], error["metadata"]) == (400, reason, {})
    assert error["message"].startswith(message), error["message"]
    assert not sim.account.generations


def test_response_image_type_enum(sim: Sim) -> None:
    body = generation_body()
    body["extra"]["response_image_type"] = "gif"
    response = sim.post("/v3/async/txt2img", body)
    assert response.json()["message"].startswith("extra.response_image_type: must be one of")


def test_oversized_input_image(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.sim import validation

    monkeypatch.setattr(validation, "MAX_INPUT_IMAGE_BYTES", 100)
    body = generation_body("img2img")
    body["request"]["image_base64"] = base64.b64encode(image_bytes("PNG", (64, 64)) + b"\0" * 200).decode()
    assert sim.post("/v3/async/img2img", body).json()["reason"] == "IMAGE_FILE_EXCEEDS_MAX_SIZE"


def test_ipm_limit_then_window_frees(sim: Sim) -> None:
    for _ in range(2):
        sim.generate(image_num=8)
    sim.clock.advance(30)
    assert sim.post("/v3/async/txt2img", generation_body(image_num=4)).status_code == 200  # 20 of 20
    refused = sim.post("/v3/async/txt2img", generation_body(image_num=1))
    assert refused.status_code == 429
    assert refused.json()["reason"] == "RATE_LIMIT_EXCEEDED"
    assert refused.json()["code"] == 429
    assert refused.headers["Retry-After"] == "30"
    other_key = sim.post("/v3/async/txt2img", generation_body(), headers={"Authorization": "Bearer other"})
    assert other_key.status_code == 200  # per key
    assert sim.post("/v3/async/img2img", generation_body("img2img")).status_code == 200  # per API
    sim.clock.advance(30)
    assert sim.post("/v3/async/txt2img", generation_body(image_num=8)).status_code == 200


def test_img2img_ipm_is_10() -> None:
    s = make_sim(SimConfig(random_seed=1))
    s.generate("img2img", image_num=8)
    assert s.post("/v3/async/img2img", generation_body("img2img", image_num=3)).status_code == 429
    assert s.post("/v3/async/img2img", generation_body("img2img", image_num=2)).status_code == 200


def test_ipm_zero_is_unlimited() -> None:
    s = make_sim(SimConfig(ipm_txt2img=0, random_seed=1))
    for _ in range(10):
        s.generate(image_num=8)


def test_requests_per_second_limit() -> None:
    s = make_sim(SimConfig(rps_limit=3, random_seed=1))
    statuses = [s.get("/v3/training").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    s.clock.advance(1.01)
    assert s.get("/v3/training").status_code == 200

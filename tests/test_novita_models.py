"""Lenient parsing of Novita answers: int64 strings, nulls, unknown statuses, missing optional fields."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.load.imagetype import sniff as sniff_image_format
from reconciler.novita import TaskResult, TrainingStatus, TrainingTask, redact_url
from reconciler.novita.wire import normalize_extension, parse_error_body
from tests.novita_fixtures import JPEG, PNG, WEBP


def test_training_task_docs_example() -> None:
    task = TrainingTask.model_validate(
        {
            "task_name": "test_01",
            "task_id": "a0c4cc90",
            "task_type": "subject",
            "task_status": "SUCCESS",
            "created_at": 1699325415,
            "models": [{"model_name": "model_1699325939_E83A88DAC5.safetensors", "model_status": "SERVING"}],
        }
    )
    assert task.created_at == 1699325415
    assert task.is_done and not task.is_failed
    assert task.model_name == "model_1699325939_E83A88DAC5.safetensors"


def test_training_task_lenient() -> None:
    task = TrainingTask.model_validate(
        {"task_id": 123, "created_at": "1699325415", "models": None, "task_status": "PAUSED", "new": {"x": 1}}
    )
    assert task.task_id == "123"
    assert task.created_at == 1699325415
    assert task.models == []
    assert task.task_status == "PAUSED" and not task.is_done and not task.is_failed
    assert task.task_name == "" and task.task_type == ""
    assert task.model_name is None


def test_training_status_extra_lifted_and_serving_rule() -> None:
    status = TrainingStatus.model_validate(
        {
            "task_id": "t",
            "task_status": "SUCCESS",
            "model_type": "",
            "models": [{"model_name": "m.safetensors", "model_status": "DEPLOYING"}],
            "extra": {"progress_percent": "100", "eta_relative": 0},
        }
    )
    assert status.progress_percent == 100.0 and status.eta_relative == 0.0
    assert not status.is_done  # SUCCESS but DEPLOYING is not usable yet
    assert status.model_name == "m.safetensors"
    serving = status.model_copy(update={"models": [status.models[0].model_copy(update={"model_status": "SERVING"})]})
    assert serving.is_done


@pytest.mark.parametrize("value", ["FAILED", "CANCELED", "failed"])
def test_training_status_failed(value: str) -> None:
    status = TrainingStatus.model_validate({"task_id": "t", "task_status": value})
    assert status.is_failed and not status.is_done
    assert status.models == [] and status.progress_percent is None and status.eta_relative is None


def test_task_result_docs_example() -> None:
    result = TaskResult.model_validate(
        {
            "extra": {"seed": "392212448", "enable_nsfw_detection": False, "debug_info": {"submit_time_ms": "1"}},
            "task": {
                "task_id": "f1",
                "task_type": "TXT_TO_IMG",
                "status": "TASK_STATUS_SUCCEED",
                "reason": "",
                "eta": 0,
                "progress_percent": 0,
            },
            "images": [
                {
                    "image_url": "https://x/a.jpeg",
                    "image_url_ttl": "3600",
                    "image_type": "jpeg",
                    "nsfw_detection_result": {},
                }
            ],
            "videos": [],
            "audios": [],
        }
    )
    assert result.task_id == "f1" and result.is_done and not result.is_failed
    assert result.seed == "392212448"
    assert result.images[0].image_url_ttl == 3600 and result.images[0].image_type == "jpeg"


def test_task_result_lenient() -> None:
    result = TaskResult.model_validate(
        {"task": {"task_id": "f1", "status": "TASK_STATUS_UNKNOWN", "eta": "12"}, "images": None, "extra": None}
    )
    assert result.status == "TASK_STATUS_UNKNOWN" and not result.is_done and not result.is_failed
    assert result.images == [] and result.seed is None and result.eta == 12.0 and result.progress_percent is None
    seeded = TaskResult.model_validate({"task": {"task_id": "f", "status": "TASK_STATUS_FAILED"}, "extra": {"seed": 7}})
    assert seeded.seed == "7" and seeded.is_failed


def test_sniff_and_extensions() -> None:
    assert sniff_image_format(PNG) == "png"
    assert sniff_image_format(JPEG) == "jpeg"
    assert sniff_image_format(WEBP) == "webp"
    assert sniff_image_format(b"<html>") is None
    assert normalize_extension(".JPG") == "jpeg"
    assert normalize_extension("webp") == "webp"


def test_redact_url() -> None:
    url = (
        "https://b.s3.amazonaws.com/k.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2Fx"
        "&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok&x-id=PutObject"
    )
    out = redact_url(url)
    assert "deadbeef" not in out and "AKIA" not in out and "tok&" not in out
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in out and "x-id=PutObject" in out
    assert redact_url("https://user:pw@h/p") == "https://h/p"


def test_error_bodies() -> None:
    assert parse_error_body(b'{"code":400,"reason":"INVALID_REQUEST_BODY","message":"bad width"}') == (
        "INVALID_REQUEST_BODY",
        "bad width",
    )
    xml = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    assert parse_error_body(xml) == ("AccessDenied", "Request has expired")
    reason, message = parse_error_body(b"<html><title>502 Bad Gateway</title>" + b"x" * 5000)
    assert reason == "" and message == "502 Bad Gateway"
    reason, message = parse_error_body(b"y" * 5000)
    assert reason == "" and len(message) <= 300
    assert parse_error_body(b'{"reason": 5, "message": ["x"]}')[0] == ""


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
        max_leaves=10,
    )
)
def test_models_never_crash_on_junk(junk: object) -> None:
    """Any JSON value either parses or raises pydantic's ValidationError (which the client translates)."""
    from pydantic import ValidationError

    for model in (TrainingTask, TrainingStatus, TaskResult):
        with contextlib.suppress(ValidationError):
            model.model_validate(junk)

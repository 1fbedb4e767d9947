"""What the client sends to each endpoint, how it reads the answers, pagination and error messages."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest

from reconciler.errors import ConfigError, NovitaError
from reconciler.novita import DEFAULT_BASE_URL, USER_AGENT, NovitaClient, error_detail
from tests.novita_fixtures import API_KEY, BASE, jresp, make_client, nerror, run


def _api_headers_ok(request: httpx.Request) -> None:
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT


def test_list_trainings_request_and_parse() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return jresp(
            200,
            {
                "tasks": [
                    {
                        "task_name": "alice-v1-0123abcd",
                        "task_id": "t1",
                        "task_type": "subject",
                        "task_status": "SUCCESS",
                        "created_at": "1699325415",
                        "models": [{"model_name": "model_1_A.safetensors", "model_status": "SERVING"}],
                    },
                    {
                        "task_name": "x",
                        "task_id": "t2",
                        "task_type": "style",
                        "task_status": "WEIRD",
                        "created_at": 1,
                        "models": None,
                    },
                ],
                "pagination": {"next_cursor": ""},
            },
        )

    client, api_rec, _ = make_client(api)
    tasks = run(client.list_trainings("subject"))
    request = api_rec.requests[0]
    assert request.method == "GET" and request.url.path == "/v3/training"
    assert dict(request.url.params) == {"pagination.limit": "100", "task_type": "subject"}
    _api_headers_ok(request)
    assert [t.task_id for t in tasks] == ["t1", "t2"]
    assert tasks[0].created_at == 1699325415 and tasks[0].is_done
    assert tasks[1].models == [] and tasks[1].task_status == "WEIRD"


def test_list_trainings_follows_every_page_and_dedupes() -> None:
    total = 257

    def api(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["pagination.limit"])
        offset = int(request.url.params.get("pagination.cursor", "c_0")[2:])
        # the last item of each page shows up again at the top of the next one: dedupe by task_id
        start = max(0, offset - 1)
        items = [
            {
                "task_name": f"n{i}",
                "task_id": f"id{i}",
                "task_type": "subject",
                "task_status": "SUCCESS",
                "created_at": i,
                "models": [],
            }
            for i in range(start, min(total, offset + limit))
        ]
        nxt = f"c_{offset + limit}" if offset + limit < total else ""
        return jresp(200, {"tasks": items, "pagination": {"next_cursor": nxt}})

    client, api_rec, _ = make_client(api)
    tasks = run(client.list_trainings())
    assert len(api_rec.requests) == 3
    assert "pagination.cursor" not in api_rec.requests[0].url.params
    assert [r.url.params.get("pagination.cursor") for r in api_rec.requests[1:]] == ["c_100", "c_200"]
    assert [t.task_id for t in tasks] == [f"id{i}" for i in range(total)]


@pytest.mark.parametrize("last", [{"pagination": {}}, {}, {"pagination": None}, {"pagination": {"next_cursor": None}}])
def test_list_trainings_stops_without_cursor(last: dict[str, Any]) -> None:
    client, api_rec, _ = make_client(lambda r: jresp(200, {"tasks": None, **last}))
    assert run(client.list_trainings()) == []
    assert len(api_rec.requests) == 1


def test_list_trainings_cursor_loop_is_broken() -> None:
    cursors = iter(["c_1", "c_2", "c_1", "c_2", "c_1"] * 5)

    def api(request: httpx.Request) -> httpx.Response:
        task = {"task_id": f"t{request.url.params.get('pagination.cursor', '0')}", "task_status": "SUCCESS"}
        return jresp(200, {"tasks": [task], "pagination": {"next_cursor": next(cursors)}})

    client, api_rec, _ = make_client(api)
    tasks = run(client.list_trainings())
    assert len(api_rec.requests) == 3
    assert sorted(t.task_id for t in tasks) == ["t0", "tc_1", "tc_2"]


@pytest.mark.parametrize(
    "body",
    [
        {"tasks": "nope"},
        {"tasks": [{"task_name": "no id"}]},
        {"tasks": [["not", "an", "object"]]},
        {"tasks": [{"task_id": "t", "models": "x"}]},
        {"tasks": [{"task_id": "t", "created_at": "yesterday"}]},
    ],
)
def test_list_trainings_wrong_types_are_novita_errors(body: dict[str, Any]) -> None:
    client, _, _ = make_client(lambda r: jresp(200, body))
    with pytest.raises(NovitaError, match=r"^Novita GET /v3/training: unexpected answer"):
        run(client.list_trainings())


@pytest.mark.parametrize("task_type", ["subject", "style"])
def test_get_training(task_type: str) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return jresp(
            200,
            {
                "task_id": "tid",
                "task_status": "TRAINING",
                "model_type": "lora",
                "models": None,
                "extra": {"progress_percent": 45.5, "eta_relative": "310"},
            },
        )

    client, api_rec, _ = make_client(api)
    status = run(client.get_training("tid", task_type))
    request = api_rec.requests[0]
    assert request.method == "GET" and request.url.path == f"/v3/training/{task_type}"
    assert dict(request.url.params) == {"task_id": "tid"}
    _api_headers_ok(request)
    assert status.task_status == "TRAINING" and status.progress_percent == 45.5 and status.eta_relative == 310
    assert status.models == [] and not status.is_done and status.model_name is None


def test_get_training_missing_fields_tolerated() -> None:
    client, _, _ = make_client(lambda r: jresp(200, {"task_status": "QUEUING"}))
    status = run(client.get_training("tid"))
    assert status.task_id == "tid" and status.model_type == "" and status.models == []


def test_task_result() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        return jresp(
            200,
            {
                "extra": {"seed": "392212448"},
                "task": {"task_id": "gid", "task_type": "TXT_TO_IMG", "status": "TASK_STATUS_SUCCEED", "reason": ""},
                "images": [
                    {
                        "image_url": "https://s3.test/o.png?X-Amz-Signature=abc",
                        "image_type": "png",
                        "image_url_ttl": "3600",
                        "nsfw_detection_result": None,
                    }
                ],
            },
        )

    client, api_rec, _ = make_client(api)
    result = run(client.task_result("gid"))
    request = api_rec.requests[0]
    assert request.url.path == "/v3/async/task-result" and dict(request.url.params) == {"task_id": "gid"}
    _api_headers_ok(request)
    assert result.is_done and result.seed == "392212448" and result.images[0].image_url_ttl == 3600


def test_task_result_without_task_is_an_error() -> None:
    client, _, _ = make_client(lambda r: jresp(200, {"images": []}))
    with pytest.raises(NovitaError, match="no 'task'"):
        run(client.task_result("gid"))


def test_create_training_body_and_task_id() -> None:
    body = {
        "name": "alice-v1-0123abcd",
        "base_model": "v1-5-pruned-emaonly",
        "width": 512,
        "height": 512,
        "image_dataset_items": [{"assets_id": "a1"}],
        "expert_setting": {"instance_prompt": "x", "class_prompt": "person"},
        "components": None,
    }
    client, api_rec, _ = make_client(lambda r: jresp(200, {"task_id": "d660cdd0"}))
    assert run(client.create_training("subject", body)) == "d660cdd0"
    request = api_rec.requests[0]
    assert request.method == "POST" and request.url.path == "/v3/training/subject"
    _api_headers_ok(request)
    assert api_rec.json(0) == body


@pytest.mark.parametrize("kind", ["txt2img", "img2img"])
def test_create_generation(kind: str) -> None:
    body = {"extra": {"response_image_type": "png"}, "request": {"model_name": "m", "prompt": "p"}}
    client, api_rec, _ = make_client(lambda r: jresp(200, {"task_id": 42}))
    assert run(client.create_generation(kind, body)) == "42"  # type: ignore[arg-type]
    assert api_rec.requests[0].url.path == f"/v3/async/{kind}"
    assert api_rec.json(0) == body


def test_bad_task_type_is_refused_locally() -> None:
    client, _, _ = make_client()
    with pytest.raises(ValueError):
        run(client.get_training("t", "../admin"))
    with pytest.raises(ValueError):
        run(client.create_training("portrait", {}))  # type: ignore[arg-type]


def test_error_message_format_and_attributes() -> None:
    client, api_rec, _ = make_client(lambda r: nerror(400, "INVALID_REQUEST_BODY", "width must be >= 1"))
    with pytest.raises(NovitaError) as info:
        run(client.create_training("subject", {"name": "x"}))
    err = info.value
    assert str(err) == "Novita POST /v3/training/subject: 400 INVALID_REQUEST_BODY: width must be >= 1"
    assert err.status == 400 and err.reason == "INVALID_REQUEST_BODY"
    assert err.message == "width must be >= 1"
    assert error_detail(err) == "400 INVALID_REQUEST_BODY: width must be >= 1"
    assert len(api_rec.requests) == 1  # 4xx is never retried


def test_error_404_not_retried() -> None:
    client, api_rec, _ = make_client(lambda r: nerror(404, "TASK_NOT_FOUND", "task not found"))
    with pytest.raises(NovitaError, match=r"^Novita GET /v3/training/subject: 404 TASK_NOT_FOUND: task not found$"):
        run(client.get_training("nope"))
    assert len(api_rec.requests) == 1


def test_non_json_error_bodies_are_cut() -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 100_000 + "</body></html>"
    client, _, _ = make_client(lambda r: httpx.Response(502, text=html), max_retries=0)
    with pytest.raises(NovitaError) as info:
        run(client.task_result("g"))
    assert str(info.value) == "Novita GET /v3/async/task-result: 502: 502 Bad Gateway"
    client, _, _ = make_client(lambda r: httpx.Response(418, text="t" * 100_000))
    with pytest.raises(NovitaError) as info:
        run(client.task_result("g"))
    assert info.value.status == 418 and len(str(info.value)) < 400


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="{not json"),
        httpx.Response(200, text="[1, 2, 3]"),
        httpx.Response(200, text=""),
        httpx.Response(200, content=b"\xff\xfe\x00garbage"),
    ],
)
def test_malformed_json_is_a_novita_error(response: httpx.Response) -> None:
    client, _, _ = make_client(lambda r: response)
    with pytest.raises(NovitaError, match="not a JSON object"):
        run(client.get_training("t"))


def test_huge_json_body_is_refused_without_reading_it_all() -> None:
    served = 0

    async def stream() -> Any:
        nonlocal served
        chunk = b" " * (1 << 20)
        for _ in range(1000):  # 1 GB if read to the end
            served += len(chunk)
            yield chunk

    client, _, _ = make_client(lambda r: httpx.Response(200, content=stream()))
    with pytest.raises(NovitaError, match="larger than"):
        run(client.list_trainings())
    assert served < 64 << 20


def test_api_redirect_is_not_followed() -> None:
    client, api_rec, _ = make_client(lambda r: httpx.Response(302, headers={"Location": "https://evil.test/steal"}))
    with pytest.raises(NovitaError, match="302"):
        run(client.get_training("t"))
    assert len(api_rec.requests) == 1


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    monkeypatch.delenv("NOVITA_API_BASE", raising=False)
    with pytest.raises(ConfigError, match="NOVITA_API_KEY is not set"):
        NovitaClient.from_env()
    monkeypatch.setenv("NOVITA_API_KEY", API_KEY)
    assert NovitaClient.from_env().base_url == DEFAULT_BASE_URL
    monkeypatch.setenv("NOVITA_API_BASE", "http://127.0.0.1:9/")
    assert NovitaClient.from_env().base_url == "http://127.0.0.1:9"
    assert NovitaClient.from_env(BASE).base_url == BASE
    assert os.environ["NOVITA_API_KEY"] == API_KEY


def test_base_url_path_prefix_and_trailing_slash() -> None:
    seen: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return jresp(200, {"task_id": "t", "task_status": "SUCCESS"})

    client = NovitaClient(API_KEY, "http://127.0.0.1:8080/", transport=httpx.MockTransport(api))
    run(client.get_training("t"))
    assert seen == ["http://127.0.0.1:8080/v3/training/subject?task_id=t"]


def test_bad_construction() -> None:
    with pytest.raises(ConfigError):
        NovitaClient("  ")
    with pytest.raises(ConfigError):
        NovitaClient(API_KEY, "ftp://x")


def test_context_manager_closes() -> None:
    async def main() -> None:
        async with NovitaClient(API_KEY, BASE, transport=httpx.MockTransport(lambda r: jresp(200, {}))) as c:
            assert isinstance(c, NovitaClient)
        assert c._api.is_closed and c._storage.is_closed

    run(main())


def test_json_body_is_compact_json() -> None:
    client, api_rec, _ = make_client(lambda r: jresp(200, {"task_id": "x"}))
    run(client.create_generation("txt2img", {"extra": None, "request": {"prompt": "ü"}}))
    assert json.loads(api_rec.bodies[0]) == {"extra": None, "request": {"prompt": "ü"}}

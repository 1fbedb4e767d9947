"""Auth, unknown paths, error body shape, upload URLs and the S3-like storage rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sim_helpers import AUTH, KEY, Sim, image_bytes, make_sim

from reconciler.sim.config import SimConfig


def test_asset_url_shape(sim: Sim) -> None:
    response = sim.post("/v3/assets/training_dataset", {"file_extension": "png"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"assets_id", "upload_url", "method", "headers"}
    assert re.fullmatch(r"[0-9a-f]{32}", body["assets_id"])
    assert body["method"] == "PUT"
    assert body["headers"] == {"Host": {"values": ["testserver"]}}
    url = urlsplit(body["upload_url"])
    assert url.path == f"/s3/training-dataset/{body['assets_id']}.png"
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["120"]
    assert {"X-Amz-Date", "X-Amz-Signature", "X-Amz-Algorithm"} <= set(query)


@pytest.mark.parametrize("ext", ["png", "webp", "jpeg"])
def test_upload_marks_asset_uploaded(sim: Sim, ext: str) -> None:
    body = sim.post("/v3/assets/training_dataset", {"file_extension": ext}).json()
    assert not sim.account.assets[body["assets_id"]]["uploaded"]
    put = sim.client.put(body["upload_url"], content=b"bytes", headers={"Content-Type": f"image/{ext}"})
    assert (put.status_code, put.content) == (200, b"")
    assert sim.account.asset_bytes(body["assets_id"]) == b"bytes"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "file_extension: required"),
        ({"file_extension": None}, "file_extension: required"),
        ({"file_extension": "jpg"}, "file_extension: must be one of ['png', 'webp', 'jpeg'], got \"jpg\""),
        ({"file_extension": 3}, "file_extension: must be a string, got 3"),
    ],
)
def test_asset_validation(sim: Sim, body: dict[str, object], message: str) -> None:
    response = sim.post("/v3/assets/training_dataset", body)
    assert response.status_code == 400
    assert response.json() == {"code": 400, "reason": "INVALID_REQUEST_BODY", "message": message, "metadata": {}}


def test_invalid_json_is_400(sim: Sim) -> None:
    response = sim.client.post("/v3/assets/training_dataset", content=b"{nope", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["reason"] == "INVALID_REQUEST_BODY"


def test_missing_key_is_400(sim: Sim) -> None:
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer "}):
        response = sim.client.post("/v3/assets/training_dataset", json={"file_extension": "png"}, headers=headers)
        assert response.status_code == 400
        assert response.json()["reason"] == "MISSING_API_KEY"
        assert response.json()["code"] == 400


def test_bare_key_is_accepted_like_the_js_sdk() -> None:
    s = make_sim(SimConfig(api_keys=frozenset({KEY}), random_seed=1))
    assert s.post("/v3/assets/training_dataset", {"file_extension": "png"}, headers={"Authorization": KEY}).is_success
    assert s.post("/v3/assets/training_dataset", {"file_extension": "png"}).is_success
    wrong = s.post("/v3/assets/training_dataset", {"file_extension": "png"}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 403
    assert wrong.json() == {"code": 403, "reason": "INVALID_API_KEY", "message": "invalid API key", "metadata": {}}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v3/nope"), ("POST", "/v2/txt2img"), ("DELETE", "/v3/training"), ("GET", "/"), ("PUT", "/v3/async/x")],
)
def test_unknown_api_is_404(sim: Sim, method: str, path: str) -> None:
    response = sim.client.request(method, path, headers=AUTH)
    assert response.status_code == 404
    assert response.json()["reason"] == "API_NOT_FOUND"
    assert response.json()["metadata"] == {}


def test_unknown_task_is_404(sim: Sim) -> None:
    for path in ("/v3/async/task-result", "/v3/training/subject", "/v3/training/style"):
        response = sim.get(path, params={"task_id": "0000"})
        assert response.status_code == 404
        assert response.json()["reason"] == "TASK_NOT_FOUND"
    assert sim.get("/v3/async/task-result").status_code == 400


def _asset(sim: Sim) -> dict[str, str]:
    body: dict[str, str] = sim.post("/v3/assets/training_dataset", {"file_extension": "jpeg"}).json()
    return body


def test_storage_refuses_the_api_key(sim: Sim) -> None:
    asset = _asset(sim)
    response = sim.client.put(asset["upload_url"], content=b"x", headers=AUTH)
    assert response.status_code == 400
    assert b"<Code>InvalidArgument</Code>" in response.content
    assert b"Only one auth mechanism allowed" in response.content
    assert KEY.encode() not in response.content
    assert not sim.account.assets[asset["assets_id"]]["uploaded"]


def test_storage_refuses_chunked_put(sim: Sim) -> None:
    asset = _asset(sim)

    def chunks() -> Iterator[bytes]:
        yield b"abc"

    response = sim.client.put(asset["upload_url"], content=chunks())
    assert response.status_code == 501
    assert b"<Code>NotImplemented</Code>" in response.content
    assert not sim.account.assets[asset["assets_id"]]["uploaded"]


def test_upload_url_expires(sim: Sim) -> None:
    asset = _asset(sim)
    sim.clock.advance(121)
    response = sim.client.put(asset["upload_url"], content=b"x")
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in response.content
    assert response.headers["content-type"] == "application/xml"


def test_upload_url_valid_until_ttl(sim: Sim) -> None:
    asset = _asset(sim)
    sim.clock.advance(119)
    assert sim.client.put(asset["upload_url"], content=b"x").status_code == 200


def test_tampered_signature_is_403(sim: Sim) -> None:
    asset = _asset(sim)
    other = _asset(sim)
    url = asset["upload_url"].replace(asset["assets_id"], other["assets_id"])
    response = sim.client.put(url, content=b"x")
    assert response.status_code == 403
    assert b"SignatureDoesNotMatch" in response.content
    longer = re.sub(r"X-Amz-Expires=120", "X-Amz-Expires=99999", asset["upload_url"])
    assert sim.client.put(longer, content=b"x").status_code == 403


def test_upload_ttl_is_configurable() -> None:
    s = make_sim(SimConfig(upload_url_ttl=5, random_seed=1))
    asset = s.post("/v3/assets/training_dataset", {"file_extension": "png"}).json()
    assert "X-Amz-Expires=5" in asset["upload_url"]
    s.clock.advance(6)
    assert s.client.put(asset["upload_url"], content=image_bytes()).status_code == 403


@pytest.mark.anyio
async def test_works_through_asgi_transport() -> None:
    s = make_sim()
    transport = httpx.ASGITransport(app=s.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim.local") as client:
        asset = (await client.post("/v3/assets/training_dataset", json={"file_extension": "png"}, headers=AUTH)).json()
        assert asset["upload_url"].startswith("http://sim.local/s3/")
        assert asset["headers"]["Host"]["values"] == ["sim.local"]
        put = await client.put(asset["upload_url"], content=b"bytes")
        assert put.status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

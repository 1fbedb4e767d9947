"""Uploads to and downloads from presigned storage URLs: streaming, no auth, re-tickets, atomic files."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import NovitaError
from reconciler.novita import NovitaClient
from tests.novita_fixtures import API_KEY, JPEG, PNG, WEBP, Sleeps, jresp, make_client, run

EXPIRED = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    b"<Message>Request has expired</Message></Error>"
)


def ticket_api(counter: list[int] | None = None, assets_id: Any = "34558688e2f42a0137ca2d5274a8cf43") -> Any:
    counter = counter if counter is not None else []

    def api(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v3/assets/training_dataset"
        counter.append(1)
        n = len(counter)
        return jresp(
            200,
            {
                "assets_id": assets_id,
                "upload_url": f"https://bucket.s3.test/up/{n}.png?X-Amz-Expires=120&X-Amz-Signature=sig{n}",
                "method": "PUT",
                "headers": {"Host": {"values": ["bucket.s3.test"]}},
            },
        )

    return api


def test_upload_request_shape(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG * 50)
    seen: list[int] = []
    client, api_rec, st_rec = make_client(ticket_api(), lambda r: httpx.Response(200))
    assets_id = run(client.upload_image(image, "png", on_bytes=seen.append))
    assert assets_id == "34558688e2f42a0137ca2d5274a8cf43"
    ticket = api_rec.requests[0]
    assert ticket.method == "POST" and api_rec.json(0) == {"file_extension": "png"}
    assert ticket.headers["authorization"] == f"Bearer {API_KEY}"
    put = st_rec.requests[0]
    assert put.method == "PUT" and put.url.host == "bucket.s3.test"
    assert put.url.params["X-Amz-Signature"] == "sig1"
    assert "authorization" not in put.headers
    assert API_KEY not in str(put.headers)
    assert put.headers["content-length"] == str(len(PNG) * 50)
    assert "transfer-encoding" not in put.headers
    assert put.headers["content-type"] == "image/png"
    assert st_rec.bodies[0] == PNG * 50
    assert sum(seen) == len(PNG) * 50


def test_upload_streams_in_chunks_not_whole_file(tmp_path: Path) -> None:
    image = tmp_path / "big.jpg"
    size = 3 * 1024 * 1024 + 5
    image.write_bytes(JPEG[:4] + b"\x00" * (size - 4))
    seen: list[int] = []
    client, api_rec, st_rec = make_client(ticket_api(), lambda r: httpx.Response(200))
    run(client.upload_image(image, ".JPG", on_bytes=seen.append))
    assert api_rec.json(0) == {"file_extension": "jpeg"}
    assert st_rec.requests[0].headers["content-type"] == "image/jpeg"
    assert len(seen) > 1 and max(seen) <= 256 * 1024 and sum(seen) == size
    assert len(st_rec.bodies[0]) == size


def test_upload_integer_assets_id(tmp_path: Path) -> None:
    image = tmp_path / "a.webp"
    image.write_bytes(WEBP)
    client, _, _ = make_client(ticket_api(assets_id=100024), lambda r: httpx.Response(200))
    assert run(client.upload_image(image, "webp")) == "100024"


def test_upload_expired_url_gets_a_fresh_ticket(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    tickets: list[int] = []
    puts: list[str] = []
    seen: list[int] = []

    def storage(request: httpx.Request) -> httpx.Response:
        puts.append(request.url.path)
        if len(puts) < 3:
            return httpx.Response(403, content=EXPIRED, headers={"Content-Type": "application/xml"})
        return httpx.Response(200)

    sleeps = Sleeps()
    client, _, _ = make_client(ticket_api(tickets), storage, sleeps=sleeps)
    assert run(client.upload_image(image, "png", on_bytes=seen.append))
    assert len(tickets) == 3 and puts == ["/up/1.png", "/up/2.png", "/up/3.png"]
    assert sum(seen) == len(PNG)  # failed tries were taken back
    assert sleeps.delays == [0.0, 0.0]


def test_upload_retries_storage_5xx_and_transport_with_a_fresh_ticket(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    tickets: list[int] = []
    steps: list[Any] = [httpx.Response(503), httpx.WriteError("pipe"), httpx.Response(200)]

    def storage(request: httpx.Request) -> httpx.Response:
        step = steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    sleeps = Sleeps()
    client, _, _ = make_client(ticket_api(tickets), storage, sleeps=sleeps)
    run(client.upload_image(image, "png"))
    assert len(tickets) == 3 and len(sleeps.delays) == 2


def test_upload_success_only_on_exactly_200(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    client, _, st_rec = make_client(ticket_api(), lambda r: httpx.Response(204))
    with pytest.raises(NovitaError, match=r"^Novita PUT https://bucket.s3.test/up/1.png: 204"):
        run(client.upload_image(image, "png"))
    assert len(st_rec.requests) == 1


def test_upload_gives_up_on_persistent_403(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    client, _, st_rec = make_client(ticket_api(), lambda r: httpx.Response(403, content=EXPIRED), max_retries=2)
    with pytest.raises(NovitaError) as info:
        run(client.upload_image(image, "png"))
    assert info.value.status == 403 and info.value.reason == "AccessDenied"
    assert "Request has expired" in str(info.value) and "sig" not in str(info.value)
    assert len(st_rec.requests) == 3


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/y", "/relative/path", "gopher://h/"])
def test_upload_refuses_other_schemes(tmp_path: Path, url: str) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    client, _, _ = make_client(lambda r: jresp(200, {"assets_id": "a", "upload_url": url, "method": "PUT"}))
    with pytest.raises(NovitaError, match="refusing"):
        run(client.upload_image(image, "png"))


def test_upload_bad_ticket_and_extension(tmp_path: Path) -> None:
    image = tmp_path / "a.gif"
    image.write_bytes(b"GIF89a")
    client, _, _ = make_client(lambda r: jresp(200, {"assets_id": "a"}))
    with pytest.raises(NovitaError, match="png, jpeg or webp"):
        run(client.upload_image(image, "gif"))
    with pytest.raises(NovitaError, match="unexpected answer"):
        run(client.upload_image(image, "png"))


# ------------------------------------------------------------------------------------------ download

IMAGE_URL = "https://out.s3.test/prod/task/abc.png?X-Amz-Expires=3600&X-Amz-Signature=topsecret"


def test_download_writes_atomically_and_hashes(tmp_path: Path) -> None:
    client, _, st_rec = make_client(storage=lambda r: httpx.Response(200, content=PNG))
    dest = tmp_path / "out" / "img-0.png"
    got = run(client.download_image(IMAGE_URL, dest, expected_type="png"))
    assert got.path == dest and dest.read_bytes() == PNG
    assert got.sha256 == hashlib.sha256(PNG).hexdigest() and got.size == len(PNG) and got.format == "png"
    request = st_rec.requests[0]
    assert "authorization" not in request.headers and request.url.params["X-Amz-Signature"] == "topsecret"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["img-0.png"]


@pytest.mark.parametrize("body,fmt", [(JPEG, "jpeg"), (WEBP, "webp")])
def test_download_formats_by_magic(tmp_path: Path, body: bytes, fmt: str) -> None:
    client, _, _ = make_client(storage=lambda r: httpx.Response(200, content=body))
    got = run(client.download_image(IMAGE_URL, tmp_path / "x.png", expected_type="png"))  # mismatch: logged only
    assert got.format == fmt


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>not an image</html>"),
        httpx.Response(200, content=b""),
        httpx.Response(404, content=b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"),
        httpx.Response(403, content=EXPIRED),
    ],
)
def test_download_failures_leave_nothing_behind(tmp_path: Path, response: httpx.Response) -> None:
    client, _, _ = make_client(storage=lambda r: response)
    dest = tmp_path / "img.png"
    with pytest.raises(NovitaError) as info:
        run(client.download_image(IMAGE_URL, dest))
    assert "topsecret" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_oversize_is_refused(tmp_path: Path) -> None:
    served = 0

    async def endless() -> Any:
        nonlocal served
        yield PNG
        while True:
            served += 1 << 20
            yield b"\x00" * (1 << 20)

    client, _, _ = make_client(storage=lambda r: httpx.Response(200, content=endless()), max_image_bytes=4 << 20)
    with pytest.raises(NovitaError, match="cap"):
        run(client.download_image(IMAGE_URL, tmp_path / "img.png"))
    assert served <= 5 << 20 and list(tmp_path.iterdir()) == []
    declared = httpx.Response(200, content=PNG, headers={"Content-Length": str(10 << 30)})
    client, _, _ = make_client(storage=lambda r: declared)
    with pytest.raises(NovitaError, match="cap"):
        run(client.download_image(IMAGE_URL, tmp_path / "img.png"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x.png", "data:image/png;base64,AAAA", "x.png"])
def test_download_refuses_other_schemes(tmp_path: Path, url: str) -> None:
    client, _, _ = make_client()
    with pytest.raises(NovitaError, match=r"refusing|unusable"):
        run(client.download_image(url, tmp_path / "img.png"))


def test_download_retries_5xx_and_transport_errors(tmp_path: Path) -> None:
    steps: list[Any] = [httpx.Response(503), httpx.ReadError("reset"), httpx.Response(200, content=PNG)]

    def storage(request: httpx.Request) -> httpx.Response:
        step = steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    sleeps = Sleeps()
    client, _, _ = make_client(storage=storage, sleeps=sleeps)
    got = run(client.download_image(IMAGE_URL, tmp_path / "img.png"))
    assert got.size == len(PNG) and len(sleeps.delays) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]


def test_download_follows_a_few_redirects_without_auth(tmp_path: Path) -> None:
    hops: list[httpx.Request] = []

    def storage(request: httpx.Request) -> httpx.Response:
        hops.append(request)
        if request.url.host == "out.s3.test":
            return httpx.Response(307, headers={"Location": "https://mirror.test/a.png"})
        return httpx.Response(200, content=PNG)

    client, _, _ = make_client(storage=storage)
    run(client.download_image(IMAGE_URL, tmp_path / "img.png"))
    assert [h.url.host for h in hops] == ["out.s3.test", "mirror.test"]
    assert all("authorization" not in h.headers for h in hops)


def test_download_redirect_loop_and_bad_scheme_redirect(tmp_path: Path) -> None:
    client, _, st_rec = make_client(storage=lambda r: httpx.Response(302, headers={"Location": "/loop"}))
    with pytest.raises(NovitaError, match="redirects"):
        run(client.download_image(IMAGE_URL, tmp_path / "img.png"))
    assert len(st_rec.requests) == 4 and list(tmp_path.iterdir()) == []
    client, _, _ = make_client(storage=lambda r: httpx.Response(302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(NovitaError, match="refusing"):
        run(client.download_image(IMAGE_URL, tmp_path / "img.png"))


def test_download_real_redirect_loop_on_real_client_transport(tmp_path: Path) -> None:
    """The storage client itself never follows redirects (so a loop cannot spin inside httpx)."""
    client = NovitaClient(API_KEY)
    assert client._storage.follow_redirects is False and client._api.follow_redirects is False
    assert "authorization" not in client._storage.headers


def test_download_undecodable_body_and_urls_in_errors_are_redacted(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"\x00" * 64

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"Content-Encoding": "gzip"})

    client, _, _ = make_client(storage=garbage)
    with pytest.raises(NovitaError, match="DecodingError"):
        run(client.download_image(IMAGE_URL, tmp_path / "img.png"))
    assert list(tmp_path.iterdir()) == []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    client, _, _ = make_client(storage=refuse, max_retries=1)
    with pytest.raises(NovitaError) as info:
        run(client.download_image(IMAGE_URL, tmp_path / "img.png"))
    assert "topsecret" not in str(info.value) and "X-Amz-Signature=***" in str(info.value)

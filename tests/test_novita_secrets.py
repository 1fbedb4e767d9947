"""The API key never leaks: not in errors, repr, logs, nor on the wire to storage; debug logs are redacted."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from reconciler.errors import NovitaError
from reconciler.novita import NovitaClient
from tests.novita_fixtures import API_KEY, PNG, jresp, make_client, nerror, run


def test_repr_and_str_hide_the_key() -> None:
    client = NovitaClient(API_KEY)
    for text in (repr(client), str(client), repr(vars(client)), repr(client._key)):
        assert API_KEY not in text


def test_errors_echoing_the_key_are_scrubbed() -> None:
    echo = f"invalid key {API_KEY} (Authorization: Bearer {API_KEY})"
    client, _, _ = make_client(lambda r: nerror(403, "INVALID_API_KEY", echo))
    with pytest.raises(NovitaError) as info:
        run(client.list_trainings())
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)
    assert API_KEY not in str(info.value.message)
    assert info.value.reason == "INVALID_API_KEY"


def test_transport_error_messages_are_scrubbed() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect with {request.headers['authorization']}")

    client, _, _ = make_client(api, max_retries=1)
    with pytest.raises(NovitaError) as info:
        run(client.get_training("t"))
    assert API_KEY not in str(info.value)


def test_debug_log_is_redacted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's included
    url = "https://out.s3.test/a.png?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=topsecret&X-Amz-Expires=60"
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    calls = iter([nerror(429, "RATE_LIMIT_EXCEEDED", API_KEY), jresp(200, {"task_id": "t"})])
    ticket = {"assets_id": "a", "upload_url": url, "method": "PUT"}

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/assets/training_dataset":
            return jresp(200, ticket)
        return next(calls)

    def storage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG)

    client, _, _ = make_client(api, storage)
    run(client.create_training("subject", {"name": "x"}))
    run(client.upload_image(image, "png"))
    run(client.download_image(url, tmp_path / "b.png"))
    http_lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.http"]
    assert any("Authorization: Bearer ***" in line for line in http_lines)
    assert any("<- POST https://api.novita.test/v3/training/subject 200" in line for line in http_lines)
    assert any("X-Amz-Signature=***" in line for line in http_lines)
    everything = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert API_KEY not in everything
    assert "topsecret" not in everything and "AKIAEXAMPLE" not in everything  # httpx's own INFO lines too
    assert any(r.name == "httpx" for r in caplog.records)


def test_storage_requests_on_the_wire_carry_no_auth_and_no_chunking(tmp_path: Path) -> None:
    """A raw socket server sees exactly what S3 would: Content-Length, no Transfer-Encoding, no key."""
    heads: list[bytes] = []
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        bodies.append(await reader.readexactly(length))
        if head.startswith(b"GET"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PNG) + PNG)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upload_url = f"http://127.0.0.1:{port}/up/a.png?X-Amz-Signature=s"

        def api(request: httpx.Request) -> httpx.Response:
            return jresp(200, {"assets_id": "a1", "upload_url": upload_url, "method": "PUT"})

        image = tmp_path / "a.png"
        image.write_bytes(PNG * 1000)
        async with NovitaClient(API_KEY, "https://api.novita.test", transport=httpx.MockTransport(api)) as client:
            assert await client.upload_image(image, "png") == "a1"
            got = await client.download_image(f"http://127.0.0.1:{port}/out.png", tmp_path / "o.png")
            assert got.format == "png"
        server.close()
        await server.wait_closed()

    run(main())
    put = heads[0].lower()
    assert put.startswith(b"put /up/a.png?")
    assert b"content-length: %d" % (len(PNG) * 1000) in put
    assert b"transfer-encoding" not in put and b"authorization" not in put
    assert API_KEY.encode().lower() not in put and b"authorization" not in heads[1].lower()
    assert bodies[0] == PNG * 1000

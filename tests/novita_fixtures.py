"""Shared helpers for the Novita client tests: MockTransport handlers, a recording sleep, tiny images."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx

from reconciler.novita import NovitaClient, RetryInfo

API_KEY = "sk_test_SECRET_0123456789abcdef"
BASE = "https://api.novita.test"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png() -> bytes:
    raw = b"\x00\xff\x00\x00"  # one red pixel, filter byte 0
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


PNG = tiny_png()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100 + b"\xff\xd9"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 28


class Sleeps:
    """A fake `asyncio.sleep` that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def jresp(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def nerror(status: int, reason: str, message: str = "boom", **headers: str) -> httpx.Response:
    body = {"code": status, "reason": reason, "message": message, "metadata": {}}
    return httpx.Response(status, json=body, headers=headers)


Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | httpx.Response]


class Recorder:
    """Wraps a handler, keeping every request (with its body read) in `requests`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(await request.aread())
        self.requests.append(request)
        result = self.handler(request)
        if isinstance(result, httpx.Response):
            return result
        return await result

    def json(self, index: int) -> Any:
        return json.loads(self.bodies[index])


def make_client(
    api: Handler | None = None,
    storage: Handler | None = None,
    *,
    sleeps: Sleeps | None = None,
    retries: list[RetryInfo] | None = None,
    **kwargs: Any,
) -> tuple[NovitaClient, Recorder, Recorder]:
    def nothing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    api_rec = Recorder(api or nothing)
    storage_rec = Recorder(storage or nothing)
    client = NovitaClient(
        API_KEY,
        BASE,
        transport=httpx.MockTransport(api_rec),
        storage_transport=httpx.MockTransport(storage_rec),
        sleep=sleeps if sleeps is not None else Sleeps(),
        on_retry=retries.append if retries is not None else None,
        **kwargs,
    )
    return client, api_rec, storage_rec

"""Wire-level helpers of the Novita client: URL redaction, error bodies, Retry-After, image magic, file
streaming. No network I/O.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx

from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.load.imagetype import FORMATS

CHUNK = 256 * 1024
# Query parameters of presigned URLs (S3, GCS, Azure, OSS, generic) that must never be logged or shown.
_SECRET_PARAMS = re.compile(
    r"^(x-amz-(signature|credential|security-token)|x-goog-(signature|credential)|signature|sig|token"
    r"|access_token|api_key|apikey|key|awsaccesskeyid|policy|x-oss-signature|ossaccesskeyid)$",
    re.IGNORECASE,
)


def redact_url(url: str | httpx.URL) -> str:
    """The URL with presigned signatures, credentials and tokens in its query replaced by `***`."""
    try:
        parsed = httpx.URL(str(url))
    except Exception:
        return "<unparseable url>"
    bare = parsed.copy_with(username=None, password=None, query=None, fragment=None)
    if not parsed.query:
        return str(bare)
    pairs = []
    for pair in parsed.query.decode("ascii", "replace").split("&"):
        name, eq, _value = pair.partition("=")
        pairs.append(f"{name}=***" if eq and _SECRET_PARAMS.match(unquote(name)) else pair)
    return f"{bare}?{'&'.join(pairs)}"


class RedactHttpxLog(logging.Filter):
    """Redacts presigned URLs in httpx's own `HTTP Request: GET <url> ...` log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_error_body(body: bytes) -> tuple[str, str]:
    """(reason, message) from a Novita JSON error, an S3 XML error, or any other body."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        reason, message = data.get("reason"), data.get("message") or data.get("msg")
        return (
            reason if isinstance(reason, str) else "",
            short(message if isinstance(message, str) else text),
        )
    code = re.search(r"<Code>([^<]{1,100})</Code>", text)
    message_xml = re.search(r"<Message>([^<]{0,1000})</Message>", text)
    if code:
        return code.group(1), short(message_xml.group(1) if message_xml else "")
    if "<html" in text[:500].lower():
        title = re.search(r"<title>([^<]{0,300})</title>", text, re.IGNORECASE)
        return "", short(title.group(1) if title else "an HTML page (proxy error?)")
    return "", short(text)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def normalize_type(image_type: str) -> str:
    """`.JPG` -> `jpeg`, `PNG` -> `png`: Novita's and file names' spellings of a format, compared alike."""
    value = image_type.lower().lstrip(".")
    return "jpeg" if value == "jpg" else value


def normalize_extension(ext: str) -> str:
    """`.JPG` -> `jpeg`; raises NovitaError for anything Novita does not take."""
    value = normalize_type(ext)
    if value not in FORMATS:
        raise NovitaError(f"Novita accepts png, jpeg or webp training images, not {ext!r}")
    return value


def check_scheme(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except Exception as exc:
        raise NovitaError(f"Novita returned an unusable URL: {short(str(exc), 100)}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise NovitaError(f"refusing to fetch {parsed.scheme or 'a relative'} URL {redact_url(parsed)}")
    return parsed


class Secret:
    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


@dataclass
class Answer:
    status: int
    body: bytes
    response: httpx.Response


class TooLarge(Exception):
    pass


@dataclass
class Retry:
    """A failed try that may be retried: the error to raise when out of tries, and what backoff needs."""

    error: NovitaError
    status: int | None
    reason: str
    after: float | None = None  # Retry-After seconds, or 0 for "at once"


@dataclass
class Got:
    sha256: str
    size: int
    format: str


def storage_label(url: httpx.URL) -> str:
    """How a storage URL appears in errors and retry reports: host and path, never the query."""
    return f"{url.scheme}://{url.host}{url.path}"


async def file_chunks(path: Path, size: int, progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    """Exactly `size` bytes of `path`, read in a worker thread chunk by chunk: never the whole file."""
    remaining = size
    with path.open("rb") as fh:
        while remaining > 0:
            chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
            if not chunk:
                raise NovitaError(f"{path} shrank while it was being uploaded")
            remaining -= len(chunk)
            progress(len(chunk))
            yield chunk


async def read_capped(response: httpx.Response, cap: int, *, truncate: bool) -> bytes:
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > cap:
        raise TooLarge
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf += chunk
        if len(buf) > cap:
            if truncate:
                return bytes(buf[:cap])
            raise TooLarge
    return bytes(buf)


def error_detail(error: NovitaError) -> str:
    """`400 INVALID_REQUEST_BODY: <Novita's message>` for an API error, for messages like
    `Novita rejected LoraModel/alice-v1: 400 INVALID_REQUEST_BODY: ...`; str(error) for any other."""
    if error.status is None:
        return str(error)
    head = f"{error.status} {error.reason}".strip()
    return f"{head}: {error.message}" if error.message else head


def unanswered_cause(error: AmbiguousSubmitError) -> str:
    """What a create got instead of an answer, in a few words: `500 CREATE_TASK_FAILED`, `503`,
    `RemoteProtocolError`, `a 200 without a task_id`."""
    if error.status is not None and error.status != 200:
        return f"{error.status} {error.reason}".strip()
    return error.reason or "no answer"


class Discard(Exception):
    """Raised inside an atomic write to drop a failed download try (the file is not replaced)."""

    def __init__(self, retry: Retry) -> None:
        self.retry = retry

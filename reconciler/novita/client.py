"""The Novita HTTP client: the project's only HTTP code. See the package docstring for the rules."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal, NoReturn, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from reconciler import __version__
from reconciler.errors import AmbiguousSubmitError, ConfigError, NovitaError, NovitaTransportError
from reconciler.files import atomic_writer
from reconciler.load.imagetype import sniff
from reconciler.novita.models import (
    AccountBalance,
    Created,
    DownloadedImage,
    RetryInfo,
    TaskResult,
    TrainingList,
    TrainingStatus,
    TrainingTask,
    UploadTicket,
    lenient_str,
)
from reconciler.novita.wire import (
    CHUNK,
    Answer,
    Discard,
    Got,
    RedactHttpxLog,
    Retry,
    Secret,
    TooLarge,
    check_scheme,
    file_chunks,
    normalize_extension,
    normalize_type,
    parse_error_body,
    read_capped,
    redact_url,
    retry_after,
    short,
    storage_label,
)
from reconciler.text import plural

DEFAULT_BASE_URL = "https://api.novita.ai"
USER_AGENT = f"reconciler/{__version__}"
MAX_CONNECTIONS = 16
MAX_JSON_BYTES = 16 * 1024 * 1024  # one page of 100 trainings is a few tens of kB
MAX_ERROR_BYTES = 64 * 1024  # read this much of an error body, show ~300 chars of it
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 3  # storage GETs only; the API and storage PUTs follow none
MAX_PAGES = 10_000
TICKET_PATH = "/v3/assets/training_dataset"
_PRE_SEND_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_RETRYABLE_OR_DEADLINE = (*_RETRYABLE, TimeoutError)
_M = TypeVar("_M", bound=BaseModel)
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")

log = logging.getLogger("reconciler.http")
# httpx logs every request's full URL at INFO: presigned signatures must not reach a CI log through it.
if not any(isinstance(f, RedactHttpxLog) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(RedactHttpxLog())


class NovitaClient:
    """Async Novita client. Use as `async with NovitaClient(key) as novita: ...` or `from_env()`.

    Create calls (`create_training`, `create_generation`) may raise `AmbiguousSubmitError`: the request may
    have reached Novita and nobody knows whether a task exists. Resolve trainings by their deterministic
    name through `list_trainings()`; a generation cannot be looked up (see the package docstring).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        storage_transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        key = (api_key or "").strip()
        if not key:
            raise ConfigError("the Novita API key is empty: set NOVITA_API_KEY")
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if httpx.URL(base).scheme not in ("http", "https"):
            raise ConfigError(f"the Novita base URL must be http(s)://..., not {redact_url(base)!r}")
        self._key = Secret(key)
        self.base_url = base
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_image_bytes = max_image_bytes
        self._on_retry = on_retry
        self._sleep = sleep or asyncio.sleep
        self._random = random.Random()
        self._halted = asyncio.Event()
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 15.0), pool=timeout)
        self._api = httpx.AsyncClient(
            base_url=base,
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=timeouts,
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )
        # No auth, no cookies carried over, no redirects followed by httpx: the key never reaches storage.
        self._storage = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=timeouts,
            limits=limits,
            transport=storage_transport,
            follow_redirects=False,
        )

    @classmethod
    def from_env(cls, base_url: str | None = None, **kwargs: Any) -> NovitaClient:
        """Key from `NOVITA_API_KEY`; base URL from the argument, `NOVITA_API_BASE`, or the default."""
        key = os.environ.get("NOVITA_API_KEY", "").strip()
        if not key:
            raise ConfigError(
                "NOVITA_API_KEY is not set: export your Novita API key "
                "(https://novita.ai/settings/key-management), or use --sim for the local simulator"
            )
        base = base_url or os.environ.get("NOVITA_API_BASE", "").strip() or DEFAULT_BASE_URL
        return cls(key, base, **kwargs)

    def __repr__(self) -> str:
        return f"NovitaClient(base_url={self.base_url!r}, api_key=***)"

    __str__ = __repr__

    async def __aenter__(self) -> NovitaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._storage.aclose()

    # ------------------------------------------------------------------------------------------ reads

    async def list_trainings(self, task_type: str | None = None) -> TrainingList:
        """Every training task in the account, all pages (`pagination.limit=100`; the server may send fewer per
        page), deduplicated by task_id."""
        tasks: dict[str, TrainingTask] = {}
        seen: set[str] = set()
        cursor = ""
        pages = 0
        for _ in range(MAX_PAGES):
            pages += 1
            params: dict[str, Any] = {"pagination.limit": 100}
            if cursor:
                params["pagination.cursor"] = cursor
            if task_type:
                params["task_type"] = task_type
            data = await self._call("GET", "/v3/training", params=params)
            items = data.get("tasks")
            if not isinstance(items, list | None):
                self._bad("GET", "/v3/training", "'tasks' is not a list")
            for item in items or []:
                task = self._parse(TrainingTask, item, "GET", "/v3/training")
                if not task.task_id:
                    self._bad("GET", "/v3/training", "a task has no task_id")
                tasks.setdefault(task.task_id, task)
            pagination = data.get("pagination")
            nxt = pagination.get("next_cursor") if isinstance(pagination, dict) else None
            nxt = lenient_str(nxt)
            if not isinstance(nxt, str) or not nxt:
                break
            if nxt in seen or nxt == cursor:
                log.warning("GET /v3/training: next_cursor %r repeats; stopping pagination", nxt[:50])
                break
            seen.add(nxt)
            cursor = nxt
        return TrainingList(list(tasks.values()), pages)

    async def get_training(self, task_id: str, task_type: str = "subject") -> TrainingStatus:
        if task_type not in ("subject", "style"):
            raise ValueError(f"task_type must be subject or style, not {task_type!r}")
        path = f"/v3/training/{task_type}"
        data = await self._call("GET", path, params={"task_id": task_id})
        if not data.get("task_id"):
            data = {**data, "task_id": task_id}
        return self._parse(TrainingStatus, data, "GET", path)

    async def task_result(self, task_id: str) -> TaskResult:
        path = "/v3/async/task-result"
        data = await self._call("GET", path, params={"task_id": task_id})
        if isinstance(data.get("task"), dict) and not data["task"].get("task_id"):
            data = {**data, "task": {**data["task"], "task_id": task_id}}
        if "task" not in data:
            self._bad("GET", path, "no 'task' in the answer")
        return self._parse(TaskResult, data, "GET", path)

    async def balance(self) -> AccountBalance:
        """GET /openapi/v1/billing/balance/detail: what the account can spend, in 1/10,000 USD."""
        path = "/openapi/v1/billing/balance/detail"
        return self._parse(AccountBalance, await self._call("GET", path), "GET", path)

    # ------------------------------------------------------------------------------------------ creates

    async def create_training(self, task_type: Literal["subject", "style"], body: dict[str, Any]) -> str:
        """POST /v3/training/{subject,style}; returns the task_id. May raise AmbiguousSubmitError."""
        if task_type not in ("subject", "style"):
            raise ValueError(f"task_type must be subject or style, not {task_type!r}")
        return await self._create(f"/v3/training/{task_type}", body)

    async def create_generation(self, task_type: Literal["txt2img", "img2img"], body: dict[str, Any]) -> str:
        """POST /v3/async/{txt2img,img2img} with `{"extra": {...}, "request": {...}}`; returns the task_id."""
        if task_type not in ("txt2img", "img2img"):
            raise ValueError(f"task_type must be txt2img or img2img, not {task_type!r}")
        return await self._create(f"/v3/async/{task_type}", body)

    async def _create(self, path: str, body: dict[str, Any]) -> str:
        data = await self._call("POST", path, json_body=body, create=True)
        try:
            created = Created.model_validate(data)
        except ValidationError:
            created = None
        if created is None or not created.task_id:
            # Novita said 200 but we cannot tell which task it made: as unknown as no answer at all.
            raise AmbiguousSubmitError(
                self._scrub(f"Novita POST {path}: 200 but no task_id in the answer: {short(str(data))}"),
                status=200,
                reason="a 200 without a task_id",
            )
        return created.task_id

    # ------------------------------------------------------------------------------------------ upload

    async def upload_image(
        self,
        path: Path,
        file_extension: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
        on_ticket: Callable[[str], Awaitable[None]] | None = None,
    ) -> str:
        """Upload one training image; returns its assets_id. Streams from disk with a Content-Length.

        A fresh upload ticket (presigned URL) is fetched for every try; a 403 (URL expired) gets a new one
        at once, 429/5xx/transport errors after a backoff. `on_bytes(n)` is called with each chunk's size as
        it is sent; when a try fails after sending some bytes, `on_bytes(-sent)` takes them back so that a
        running total stays right. `await on_ticket(assets_id)` runs before each PUT.
        """
        ext = normalize_extension(file_extension)
        path = Path(path)
        size = path.stat().st_size
        for attempt in range(1, self.max_retries + 2):
            data = await self._call("POST", TICKET_PATH, json_body={"file_extension": ext})
            ticket = self._parse(UploadTicket, data, "POST", TICKET_PATH)
            if not ticket.assets_id or not ticket.upload_url:
                self._bad("POST", TICKET_PATH, "no assets_id or upload_url in the ticket")
            method = (ticket.method or "PUT").upper()
            if method not in ("PUT", "POST"):
                self._bad("POST", TICKET_PATH, f"unexpected upload method {method!r}")
            url = check_scheme(ticket.upload_url)
            label = storage_label(url)
            if on_ticket is not None:  # lets the caller record the assets_id before the bytes go out
                await on_ticket(ticket.assets_id)
            sent = 0

            def progress(n: int) -> None:
                nonlocal sent
                sent += n
                if on_bytes is not None:
                    on_bytes(n)

            headers = {"Content-Length": str(size), "Content-Type": f"image/{ext}"}
            request = self._storage.build_request(
                method, url, headers=headers, content=file_chunks(path, size, progress)
            )
            try:
                answer = await self._send(self._storage, request, MAX_ERROR_BYTES)
            except _RETRYABLE as exc:
                retry = Retry(self._transport_error(method, label, exc, attempt), None, type(exc).__name__)
            except httpx.HTTPError as exc:
                raise self._transport_error(method, label, exc, attempt) from exc
            else:
                if answer.status == 200:
                    return ticket.assets_id
                error = self._http_error(method, label, answer)
                if answer.status == 403:  # the presigned URL expired: a new ticket, no need to wait
                    retry = Retry(error, 403, error.reason, 0.0)
                elif answer.status == 429 or answer.status >= 500:
                    retry = Retry(error, answer.status, error.reason, retry_after(answer.response))
                else:
                    raise error
            if sent and on_bytes is not None:
                on_bytes(-sent)
            if attempt > self.max_retries:
                raise retry.error
            await self._backoff(method, label, attempt, retry.status, retry.reason, retry.after, retry.error)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------------ download

    async def download_image(self, url: str, dest: Path, *, expected_type: str | None = None) -> DownloadedImage:
        """GET a presigned image URL into `dest` atomically: a temp file beside it, sha256 while writing,
        png/jpeg/webp magic check, fsync, rename. The temp file is removed on any failure. Refuses
        non-http(s) URLs and bodies over `max_image_bytes`; follows at most a few redirects, never with auth.
        A mismatch with `expected_type` (Novita's `image_type`) is only logged: `format` tells the truth.
        """
        dest = Path(dest)
        start = check_scheme(url)
        label = storage_label(start)
        for attempt in range(1, self.max_retries + 2):
            try:
                with atomic_writer(dest) as out:
                    result = await self._download_once(start, out, attempt)
                    if isinstance(result, Retry):
                        raise Discard(result)  # leaves `dest` untouched, removes the partial file
            except Discard as discarded:
                result = discarded.retry
            else:
                if expected_type and normalize_type(expected_type) != result.format:
                    log.warning("%s: Novita said %s, the bytes are %s", dest.name, expected_type, result.format)
                return DownloadedImage(dest, result.sha256, result.size, result.format)
            if attempt > self.max_retries:
                raise result.error
            await self._backoff("GET", label, attempt, result.status, result.reason, result.after, result.error)
        raise AssertionError("unreachable")

    async def _download_once(self, start: httpx.URL, out: BinaryIO, attempt: int) -> Got | Retry:
        url = start
        for _hop in range(MAX_REDIRECTS + 1):
            label = storage_label(url)
            request = self._storage.build_request("GET", url, headers={"Accept": "image/*"})
            began = time.monotonic()
            self._log_request(request)
            try:
                response = await self._storage.send(request, stream=True)
            except _RETRYABLE as exc:
                return Retry(self._transport_error("GET", label, exc, attempt), None, type(exc).__name__)
            except httpx.HTTPError as exc:
                raise self._transport_error("GET", label, exc, attempt) from exc
            try:
                self._log_response(request, response, began)
                if response.is_redirect:
                    url = check_scheme(str(url.join(response.headers.get("location", ""))))
                    continue
                if response.status_code != 200:
                    body = await read_capped(response, MAX_ERROR_BYTES, truncate=True)
                    error = self._http_error("GET", label, Answer(response.status_code, body, response))
                    if response.status_code == 429 or response.status_code >= 500:
                        return Retry(error, response.status_code, error.reason, retry_after(response))
                    raise error
                return await self._stream_image(response, out, label)
            except _RETRYABLE as exc:
                return Retry(self._transport_error("GET", label, exc, attempt), None, type(exc).__name__)
            except httpx.HTTPError as exc:  # e.g. a body that does not decode as its Content-Encoding
                raise self._transport_error("GET", label, exc, attempt) from exc
            finally:
                await response.aclose()
        raise NovitaError(f"Novita GET {storage_label(start)}: more than {MAX_REDIRECTS} redirects")

    async def _stream_image(self, response: httpx.Response, out: BinaryIO, label: str) -> Got:
        cap = self.max_image_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise NovitaError(f"Novita GET {label}: an image of {declared} bytes is over the {cap}-byte cap")
        digest = hashlib.sha256()
        size = 0
        head = b""
        async for chunk in response.aiter_bytes(CHUNK):
            size += len(chunk)
            if size > cap:
                raise NovitaError(f"Novita GET {label}: the image is over the {cap}-byte cap")
            if len(head) < 16:
                head += chunk[:16]
            digest.update(chunk)
            out.write(chunk)
        fmt = sniff(head)
        if fmt is None:
            raise NovitaError(f"Novita GET {label}: the body is not a png, jpeg or webp image ({size} bytes)")
        return Got(digest.hexdigest(), size, fmt)

    # ------------------------------------------------------------------------------------------ core

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        create: bool = False,
    ) -> dict[str, Any]:
        """One API call with retries; returns the JSON object of a 2xx answer."""
        for attempt in range(1, self.max_retries + 2):
            request = self._api.build_request(
                method, path, params=params, **({"json": json_body} if json_body is not None else {})
            )
            final = attempt > self.max_retries
            try:
                async with asyncio.timeout(self.timeout * 3):  # a slow drip of bytes still ends
                    answer = await self._send(self._api, request, MAX_JSON_BYTES, strict=True)
            except TooLarge:
                message = f"Novita {method} {path}: answer larger than {MAX_JSON_BYTES} bytes"
                if create:
                    raise AmbiguousSubmitError(message, reason="an oversized answer") from None
                raise NovitaError(message) from None
            except _RETRYABLE_OR_DEADLINE as exc:
                if isinstance(exc, TimeoutError):
                    exc = httpx.ReadTimeout("no complete answer in time")
                if create and not isinstance(exc, _PRE_SEND_ERRORS):
                    raise AmbiguousSubmitError(
                        self._scrub(
                            f"Novita {method} {path}: sent, but no answer ({type(exc).__name__}: "
                            f"{short(str(exc), 200)}); the task may or may not exist"
                        ),
                        reason=type(exc).__name__,
                    ) from exc
                failed = self._transport_error(method, path, exc, attempt)
                if final:
                    raise failed from exc
                await self._backoff(method, path, attempt, None, type(exc).__name__, None, failed)
                continue
            except httpx.HTTPError as exc:  # undecodable body, unsupported protocol, ...: not retryable
                if create and not isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
                    raise AmbiguousSubmitError(
                        self._scrub(
                            f"Novita {method} {path}: sent, but the answer is unreadable "
                            f"({type(exc).__name__}: {short(str(exc), 200)}); the task may or may not exist"
                        ),
                        reason=type(exc).__name__,
                    ) from exc
                raise self._transport_error(method, path, exc, attempt) from exc
            if 200 <= answer.status < 300:
                return self._json_object(method, path, answer.body, create)
            error = self._http_error(method, path, answer)
            status = answer.status
            # Any 5xx after a create may hide a task that exists: gateways have been seen to create the task and
            # then answer 500 CREATE_TASK_FAILED, 502 or 503. Only a 429 (or any other 4xx) proves nothing was made.
            if create and status >= 500:
                raise AmbiguousSubmitError(
                    f"{error}; the task may or may not exist", status=status, reason=error.reason
                )
            if final or not (status == 429 or status >= 500):
                raise error
            await self._backoff(method, path, attempt, status, error.reason, retry_after(answer.response), error)
        raise AssertionError("unreachable")

    async def _send(
        self, client: httpx.AsyncClient, request: httpx.Request, cap: int, *, strict: bool = False
    ) -> Answer:
        """Send, read at most `cap` bytes of a 2xx body (more: `TooLarge` if strict, else cut), at most
        MAX_ERROR_BYTES of any other body, and close."""
        began = time.monotonic()
        self._log_request(request)
        response = await client.send(request, stream=True)
        try:
            self._log_response(request, response, began)
            status = response.status_code
            if 200 <= status < 300:
                body = await read_capped(response, cap, truncate=not strict)
            else:
                body = await read_capped(response, MAX_ERROR_BYTES, truncate=True)
        finally:
            await response.aclose()
        return Answer(status, body, response)

    def halt(self) -> None:
        """Ctrl-C: from now on no call waits to retry; one waiting raises its last error at once. A request
        already on the wire still gets its answer (a create's task id must not be lost)."""
        self._halted.set()

    async def _backoff(
        self,
        method: str,
        url: str,
        attempt: int,
        status: int | None,
        reason: str,
        retry_after: float | None,
        error: NovitaError,
    ) -> None:
        """Wait before the next try; after `halt()`, raise `error` instead (at once, or when halted mid-wait)."""
        if self._halted.is_set():
            raise error
        if retry_after is not None:
            delay = min(retry_after, max(self.backoff_max, 60.0))
        else:
            delay = self._random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
        info = RetryInfo(method, url, attempt, self.max_retries, delay, status, reason)
        log.debug("retry %s %s after attempt %d (%s %s) in %.2fs", method, url, attempt, status or "", reason, delay)
        if self._on_retry is not None:
            self._on_retry(info)
        sleeping = asyncio.ensure_future(self._sleep(delay))
        halted = asyncio.ensure_future(self._halted.wait())
        try:
            await asyncio.wait({sleeping, halted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            halted.cancel()
        if self._halted.is_set():
            raise error

    def _json_object(self, method: str, path: str, body: bytes, create: bool) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        excerpt = short(body.decode("utf-8", "replace"), 200)
        message = self._scrub(f"Novita {method} {path}: the answer is not a JSON object: {excerpt!r}")
        if create:
            raise AmbiguousSubmitError(
                message + "; the task may or may not exist", status=200, reason="an answer that is not JSON"
            )
        raise NovitaError(message, status=200)

    def _parse(self, model: type[_M], data: Any, method: str, path: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "answer"
            self._bad(method, path, f"{where}: {first['msg']}")

    def _bad(self, method: str, path: str, what: str) -> NoReturn:
        raise NovitaError(self._scrub(f"Novita {method} {path}: unexpected answer: {short(what, 200)}"), status=200)

    def _http_error(self, method: str, label: str, answer: Answer) -> NovitaError:
        reason, message = parse_error_body(answer.body)
        if not message and not reason:
            message = answer.response.reason_phrase
        text = f"Novita {method} {label}: {answer.status}{' ' + reason if reason else ''}"
        text += f": {message}" if message else ""
        return NovitaError(self._scrub(text), status=answer.status, reason=reason, message=self._scrub(message))

    def _transport_error(self, method: str, label: str, exc: Exception, attempts: int) -> NovitaTransportError:
        tries = f" after {plural(attempts, 'attempt')}" if attempts > 1 else ""
        detail = short(_URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(exc)), 200) or type(exc).__name__
        return NovitaTransportError(
            self._scrub(f"Novita {method} {label}: no usable answer{tries}: {type(exc).__name__}: {detail}"),
            reason=type(exc).__name__,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._key.value, "***")

    def _log_request(self, request: httpx.Request) -> None:
        if log.isEnabledFor(logging.DEBUG):
            headers = "; ".join(
                f"{k}: Bearer ***" if k.lower() == "authorization" else f"{k}: {v}"
                for k, v in ((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw)
            )
            log.debug("-> %s %s [%s]", request.method, redact_url(request.url), self._scrub(headers))

    def _log_response(self, request: httpx.Request, response: httpx.Response, began: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "<- %s %s %d in %.3fs",
                request.method,
                redact_url(request.url),
                response.status_code,
                time.monotonic() - began,
            )

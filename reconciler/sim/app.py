"""The simulator's HTTP layer: starlette routes for the Novita endpoints, presigned storage and /_sim admin.

Each API route goes through one wrapper that adds latency and injected faults, checks the key and the
per-second limit, calls the handler, maybe drops the connection after handling, and logs the request.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reconciler.sim import storage
from reconciler.sim.account import SAVE_INTERVAL, Account, Clock, key_hint
from reconciler.sim.config import GHOST_ANSWERS, OWN_FAULTS_ONLY, ConfigError, SimConfig
from reconciler.sim.images import CONTENT_TYPES
from reconciler.sim.store import Store
from reconciler.sim.validation import BadRequest, parse_asset_request, parse_generation, parse_training

RAW_SEND = "sim.raw_send"
PROXY_PAGE = (
    "<html>\r\n<head><title>{0}</title></head>\r\n<body>\r\n<center><h1>{0}</h1></center>\r\n</body>\r\n</html>\r\n"
)
SERVER_ERROR_REASONS = {
    "training-create": "CREATE_TASK_FAILED",
    "txt2img": "CREATE_TASK_FAILED",
    "img2img": "CREATE_TASK_FAILED",
    "task-result": "GET_RESULT_FAILED",
}


def error_response(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """Novita's error body: {code, reason, message, metadata: {}}."""
    body = {"code": status, "reason": reason, "message": message, "metadata": {}}
    return JSONResponse(body, status_code=status, headers=headers)


class ApiError(Exception):
    """Raised by handlers; becomes error_response()."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.response = error_response(status, reason, message, headers)


class DropConnection(Response):
    """Not a response: closing the client's connection without a byte of answer.

    Under uvicorn the transport of the request cycle is closed and the app returns once uvicorn has noticed,
    so no 500 is written. Without a socket (httpx.ASGITransport) the client gets the exception httpx raises
    for a server that hangs up: httpx.RemoteProtocolError.
    """

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(RAW_SEND)
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is None:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response. (simulated drop)")
        transport.close()
        for _ in range(3):  # let uvicorn's connection_lost run so it does not answer 500 for us
            await asyncio.sleep(0)


class SimStarlette(Starlette):
    """Starlette that keeps the server's own `send` in the scope, for DropConnection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


@dataclass
class Call:
    """What one request did, for the request log."""

    endpoint: str
    key: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Request, Call], Awaitable[Response]]


def _account(request: Request) -> Account:
    account: Account = request.app.state.account
    return account


def _api_key(request: Request) -> str:
    value = request.headers.get("authorization", "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    elif value.lower() == "bearer":
        value = ""
    if not value:
        raise ApiError(400, "MISSING_API_KEY", "missing API key: send Authorization: Bearer <key>")
    keys = _account(request).config.api_keys
    if keys is not None and value not in keys:
        raise ApiError(403, "INVALID_API_KEY", "invalid API key")
    return value


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "INVALID_REQUEST_BODY", f"body: invalid JSON: {exc}") from None


def _injected_error(account: Account, endpoint: str, is_storage: bool) -> tuple[str, Response] | None:
    faults = account.faults
    if account.roll(faults.rate(endpoint, "5xx")):
        status = (500, 502, 503)[int(account.uniform(0, 3)) % 3]
        if is_storage:
            code = {500: "InternalError", 502: "InternalError", 503: "SlowDown"}[status]
            body = storage.S3Error(status, code, "We encountered an internal error. Please try again.")
            return "5xx", Response(body.xml("SIM5XX"), status, media_type="application/xml")
        if status == 500:
            reason = SERVER_ERROR_REASONS.get(endpoint, "GET_RESULT_FAILED")
            return "5xx", error_response(500, reason, "internal error (simulated)")
        title = f"{status} {'Bad Gateway' if status == 502 else 'Service Temporarily Unavailable'}"
        return "5xx", Response(PROXY_PAGE.format(title), status, media_type="text/html")
    if account.roll(faults.rate(endpoint, "429")):
        return "429", error_response(
            429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded (simulated)", {"Retry-After": "1"}
        )
    return None


def _ghost_answer(endpoint: str, answer: str, is_storage: bool) -> Response:
    """What a ghost answers once the request was handled (the task exists): an error that looks like nothing
    was made, as gateways have been seen to send."""
    if answer == "drop":
        return DropConnection()
    if is_storage:
        body = storage.S3Error(500 if answer != "503" else 503, "InternalError", "We encountered an internal error.")
        return Response(body.xml("SIMGHOST"), body.status, media_type="application/xml")
    if answer == "503":
        return Response(PROXY_PAGE.format("503 Service Temporarily Unavailable"), 503, media_type="text/html")
    if answer == "CREATE_TASK_FAILED":
        return error_response(500, SERVER_ERROR_REASONS.get(endpoint, "GET_RESULT_FAILED"), "failed to create task")
    return Response(PROXY_PAGE.format("500 Internal Server Error"), 500, media_type="text/html")


def endpoint(name: str, is_storage: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler with latency, faults, auth, the per-second limit, drop-after / ghost answers and the request
    log."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            account = _account(request)
            call = Call(name)
            fault: str | None = None
            faults = account.faults
            jitter = faults.latency_jitter if name not in OWN_FAULTS_ONLY else 0.0
            delay = faults.latency + (account.uniform(0, jitter) if jitter else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            response: Response
            injected = _injected_error(account, name, is_storage)
            if account.roll(faults.rate(name, "drop")):
                fault, response = "drop", DropConnection()
            elif injected:
                fault, response = injected
            else:
                try:
                    if not is_storage:
                        call.key = _api_key(request)
                        if not account.rps_check(call.key):
                            raise ApiError(
                                429, "RATE_LIMIT_EXCEEDED", "too many requests per second", {"Retry-After": "1"}
                            )
                    response = await handler(request, call)
                except ApiError as exc:
                    response = exc.response
                except BadRequest as exc:
                    response = error_response(400, exc.reason, exc.message)
                if response.status_code == 200 and account.roll(faults.rate(name, "drop-after")):
                    fault = "drop-after"
                elif response.status_code == 200 and account.roll(faults.rate(name, "ghost")):
                    pick = GHOST_ANSWERS[int(account.uniform(0, len(GHOST_ANSWERS))) % len(GHOST_ANSWERS)]
                    answer = faults.ghost_answer or pick
                    fault, response = f"ghost-{answer}", _ghost_answer(name, answer, is_storage)
            status = response.status_code
            _log(account, request, call, 0 if fault in ("drop", "ghost-drop") else status, fault)
            return DropConnection() if fault == "drop-after" else response

        return route

    return wrap


def _log(account: Account, request: Request, call: Call, status: int, fault: str | None) -> None:
    query = {k: v for k, v in request.query_params.items() if k not in ("X-Amz-Signature", "X-Amz-Credential")}
    account.log_request(
        {
            "ts": round(account.now(), 6),
            "method": request.method,
            "path": request.url.path,
            "query": query,
            "status": status,
            "endpoint": call.endpoint,
            "key_hint": key_hint(call.key),
            "body_summary": call.summary,
            "fault": fault,
        }
    )


def _base_url(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def _ok(body: dict[str, Any]) -> Response:
    return JSONResponse(body, status_code=200)


def _required_query(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise ApiError(400, "INVALID_REQUEST_BODY", f"{name}: required")
    return value


# ---- Novita API ---------------------------------------------------------------------------------------------


@endpoint("assets")
async def create_asset(request: Request, call: Call) -> Response:
    ext = parse_asset_request(await _json(request))
    account = _account(request)
    asset = account.create_asset(ext)
    _persist_soon(account)
    path = f"{storage.UPLOAD_PREFIX}{asset['assets_id']}.{ext}"
    base = _base_url(request)
    url = storage.presign(account.secret, "PUT", base, path, account.now(), account.config.upload_url_ttl)
    call.summary = {"file_extension": ext, "assets_id": asset["assets_id"]}
    host = base.split("://", 1)[1]
    return _ok(
        {"assets_id": asset["assets_id"], "upload_url": url, "method": "PUT", "headers": {"Host": {"values": [host]}}}
    )


def _training_create(kind: str) -> Handler:
    async def handler(request: Request, call: Call) -> Response:
        body = await _json(request)
        if isinstance(body, dict):
            items = body.get("image_dataset_items")
            call.summary = {
                "task_type": kind,
                "name": body.get("name"),
                "items": len(items) if isinstance(items, list) else 0,
                "assets_ids": [i.get("assets_id") for i in items if isinstance(i, dict)]
                if isinstance(items, list)
                else [],
            }
        spec = parse_training(body, kind)
        task_id = _account(request).create_training(kind, spec)
        call.summary["task_id"] = task_id
        return _ok({"task_id": task_id})

    return handler


async def get_training(request: Request, call: Call) -> Response:
    task_id = _required_query(request, "task_id")
    call.summary = {"task_id": task_id}
    view = _account(request).training_view(task_id)
    if view is None:
        raise ApiError(404, "TASK_NOT_FOUND", f"task {task_id} not found")
    return _ok(view)


@endpoint("training-list")
async def list_trainings(request: Request, call: Call) -> Response:
    account = _account(request)
    params = request.query_params
    limit_text = params.get("pagination.limit", "")
    limit = account.config.list_default_limit
    if limit_text:
        if not re.fullmatch(r"-?\d+", limit_text.strip()):
            raise ApiError(400, "INVALID_REQUEST_BODY", f'pagination.limit: must be an integer, got "{limit_text}"')
        limit = int(limit_text)
        if not 1 <= limit <= 100:
            raise ApiError(400, "INVALID_REQUEST_BODY", f"pagination.limit: must be in [1, 100], got {limit}")
    limit = min(limit, account.config.list_max_limit)  # a server may serve fewer than asked; next_cursor goes on
    cursor = params.get("pagination.cursor", "")
    match = re.fullmatch(r"c_(\d+)", cursor)
    if cursor and not match:
        raise ApiError(400, "INVALID_REQUEST_BODY", f'pagination.cursor: expected "c_<offset>", got "{cursor}"')
    offset = int(match.group(1)) if match else 0
    task_type = params.get("task_type") or None
    if task_type not in (None, "subject", "style"):
        raise ApiError(400, "INVALID_REQUEST_BODY", f'task_type: must be one of [subject, style], got "{task_type}"')
    call.summary = {"limit": limit, "offset": offset, "task_type": task_type}
    return _ok(account.list_trainings(offset, limit, task_type))


def _generation_create(kind: str) -> Handler:
    async def handler(request: Request, call: Call) -> Response:
        body = await _json(request)
        req = body.get("request") if isinstance(body, dict) else None
        if isinstance(req, dict):
            raw_loras = req.get("loras")
            loras: list[Any] = raw_loras if isinstance(raw_loras, list) else []
            call.summary = {
                "prompt": req.get("prompt"),
                "image_num": req.get("image_num"),
                "loras": [x.get("model_name") for x in loras if isinstance(x, dict)],
                "seed": req.get("seed"),
            }
        parsed = parse_generation(body, kind)
        account = _account(request)
        wait = account.ipm_check(call.key, kind, parsed["image_num"])
        if wait is not None:
            limit = account.config.ipm_txt2img if kind == "txt2img" else account.config.ipm_img2img
            raise ApiError(
                429,
                "RATE_LIMIT_EXCEEDED",
                f"rate limit exceeded: {limit} images per minute for {kind}",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        task_id, seed = account.create_generation(parsed, call.key)
        call.summary.update(task_id=task_id, used_seed=seed)
        _persist_soon(account)
        return _ok({"task_id": task_id})

    return handler


def _persist_soon(account: Account) -> None:
    """Write account.json at most every SAVE_INTERVAL for frequent, cheap events (tickets, uploads, image
    tasks); a flush is scheduled so the last change is written too."""
    if account.save_soon():
        asyncio.get_running_loop().call_later(SAVE_INTERVAL, account.flush)


def _ms(ts: float | None) -> str:
    return str(int(ts * 1000)) if ts is not None else ""


@endpoint("task-result")
async def task_result(request: Request, call: Call) -> Response:
    task_id = _required_query(request, "task_id")
    call.summary = {"task_id": task_id}
    account = _account(request)
    view = account.generation_view(task_id)
    if view is None:
        raise ApiError(404, "TASK_NOT_FOUND", f"task {task_id} not found")
    req = view["request"]
    images = []
    if view["status"] == "TASK_STATUS_SUCCEED":
        ttl = account.config.image_url_ttl
        base, now = _base_url(request), account.now()
        for index in range(req["image_num"]):
            path = f"{storage.OUTPUT_PREFIX}{task_id}/{index}.{req['image_type']}"
            images.append(
                {
                    "image_url": storage.presign(account.secret, "GET", base, path, now, ttl),
                    "image_url_ttl": str(ttl),
                    "image_type": req["image_type"],
                    "nsfw_detection_result": {"valid": True, "confidence": 0.02}
                    if req["enable_nsfw_detection"]
                    else None,
                }
            )
    request_info = {k: req[k] for k in ("model_name", "prompt", "width", "height", "image_num", "steps")}
    return _ok(
        {
            "extra": {
                "seed": str(view["seed"]),
                "enable_nsfw_detection": req["enable_nsfw_detection"],
                "debug_info": {
                    "request_info": json.dumps(request_info, separators=(",", ":")),
                    "submit_time_ms": _ms(view["submitted"]),
                    "execute_time_ms": _ms(view["started"]),
                    "complete_time_ms": _ms(view["finished"]),
                },
            },
            "task": {
                "task_id": task_id,
                "task_type": "TXT_TO_IMG" if req["kind"] == "txt2img" else "IMG_TO_IMG",
                "status": view["status"],
                "reason": view["reason"],
                "eta": view["eta"],
                "progress_percent": view["progress_percent"],
            },
            "images": images,
            "videos": [],
            "audios": [],
        }
    )


# ---- presigned storage --------------------------------------------------------------------------------------


def _s3(error: storage.S3Error) -> Response:
    return Response(
        error.xml(f"SIM{int(time.time() * 1000) % 10**10:010d}"), error.status, media_type="application/xml"
    )


@endpoint("upload", is_storage=True)
async def upload(request: Request, call: Call) -> Response:
    account = _account(request)
    name = request.path_params["name"]
    assets_id = name.split(".", 1)[0]
    call.summary = {"assets_id": assets_id}
    headers = {k.lower(): v for k, v in request.headers.items()}
    now = account.now()
    refused = storage.check_request(account.secret, "PUT", request.url.path, request.query_params, headers, now)
    if refused:
        return _s3(refused)
    asset = account.asset(assets_id)
    if asset is None or name != f"{assets_id}.{asset['ext']}":
        return _s3(storage.S3Error(403, "AccessDenied", "Access Denied"))
    if asset["expire_early"]:
        return _s3(storage.expired(account.config.upload_url_ttl, now - 1, now))
    data = await request.body()
    account.store_upload(assets_id, data)
    _persist_soon(account)
    call.summary["bytes"] = len(data)
    return Response(b"", 200, headers={"ETag": f'"{asset["assets_id"][:32]}"'})


@endpoint("download", is_storage=True)
async def download(request: Request, call: Call) -> Response:
    account = _account(request)
    task_id, name = request.path_params["task_id"], request.path_params["name"]
    call.summary = {"task_id": task_id, "file": name}
    headers = {k.lower(): v for k, v in request.headers.items()}
    refused = storage.check_request(
        account.secret, "GET", request.url.path, request.query_params, headers, account.now()
    )
    if refused:
        return _s3(refused)
    stem, _, ext = name.partition(".")
    data = account.output_bytes(task_id, int(stem)) if stem.isdigit() else None
    if data is None or ext not in CONTENT_TYPES:
        return _s3(storage.S3Error(404, "NoSuchKey", "The specified key does not exist."))
    return Response(data, 200, media_type=CONTENT_TYPES[ext])


@endpoint("balance")
async def balance(request: Request, call: Call) -> Response:
    return _ok(_account(request).balance_view())


# ---- fallbacks and admin ------------------------------------------------------------------------------------


async def not_found(request: Request) -> Response:
    _log(_account(request), request, Call("unknown"), 404, None)
    return error_response(404, "API_NOT_FOUND", f"{request.method} {request.url.path}: API not found")


async def admin_state(request: Request) -> Response:
    return _ok(_account(request).summary())


async def admin_requests(request: Request) -> Response:
    account = _account(request)
    since = int(request.query_params.get("since", "0") or 0)
    wanted = request.query_params.get("endpoint")
    records = account.request_log[since:]
    if wanted:
        records = [r for r in records if r["endpoint"] == wanted]
    return _ok({"requests": records, "next": len(account.request_log)})


async def _admin_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "INVALID_REQUEST_BODY", f"body: invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_REQUEST_BODY", "body: must be an object")
    return body


def _admin(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response
        except (ConfigError, ValueError, TypeError) as exc:
            return error_response(400, "INVALID_REQUEST_BODY", str(exc))

    return route


async def admin_faults(request: Request) -> Response:
    account = _account(request)
    account.faults.update(await _admin_json(request))
    return _ok(account.faults.to_json())


async def admin_seed(request: Request) -> Response:
    body = await _admin_json(request)
    account = _account(request)
    total = account.seed_foreign(int(body.get("count", 100)), int(body.get("seed", account.base_seed)))
    return _ok({"trainings": total})


async def admin_balance(request: Request) -> Response:
    """Top the balance up (`{"top_up": N}`) or set it (`{"set": N}`), in 1/10,000 USD."""
    body = await _admin_json(request)
    top_up, set_to = body.get("top_up"), body.get("set")
    for value in (top_up, set_to):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ApiError(400, "INVALID_REQUEST_BODY", "top_up and set: integers in 1/10,000 USD")
    return _ok({"balance": _account(request).top_up(top_up, set_to)})


async def admin_clock(request: Request) -> Response:
    account = _account(request)
    if not account.config.clock_control:
        raise ApiError(403, "FEATURE_NOT_ALLOWED", "clock control is off: start with --clock-control")
    body = await _admin_json(request)
    now = account.advance(float(body.get("advance", 0)))
    return _ok({"now": now, "clock_offset": account.clock_offset})


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def routes() -> list[Route]:
    training_get = endpoint("training-get")(get_training)
    return [
        Route("/v3/assets/training_dataset", create_asset, methods=["POST"]),
        Route("/v3/training/subject", endpoint("training-create")(_training_create("subject")), methods=["POST"]),
        Route("/v3/training/style", endpoint("training-create")(_training_create("style")), methods=["POST"]),
        Route("/v3/training/subject", training_get, methods=["GET"]),
        Route("/v3/training/style", training_get, methods=["GET"]),
        Route("/v3/training", list_trainings, methods=["GET"]),
        Route("/v3/async/txt2img", endpoint("txt2img")(_generation_create("txt2img")), methods=["POST"]),
        Route("/v3/async/img2img", endpoint("img2img")(_generation_create("img2img")), methods=["POST"]),
        Route("/v3/async/task-result", task_result, methods=["GET"]),
        Route("/openapi/v1/billing/balance/detail", balance, methods=["GET"]),
        Route(storage.UPLOAD_PREFIX + "{name}", upload, methods=["PUT"]),
        Route(storage.OUTPUT_PREFIX + "{task_id}/{name}", download, methods=["GET"]),
        Route("/_sim/state", _admin(admin_state), methods=["GET"]),
        Route("/_sim/requests", _admin(admin_requests), methods=["GET"]),
        Route("/_sim/faults", _admin(admin_faults), methods=["POST"]),
        Route("/_sim/seed", _admin(admin_seed), methods=["POST"]),
        Route("/_sim/clock", _admin(admin_clock), methods=["POST"]),
        Route("/_sim/balance", _admin(admin_balance), methods=["POST"]),
        Route("/{path:path}", not_found, methods=ALL_METHODS),
    ]


def create_app(config: SimConfig, data_dir: Path | None = None, clock: Clock | None = None) -> Starlette:
    """The simulator as an ASGI app; its Account is `app.state.account` (in memory when data_dir is None)."""
    store = Store(data_dir) if data_dir is not None else None
    app = SimStarlette(routes=routes())
    app.state.account = Account(config, store, clock)
    return app

"""Retries with backoff for idempotent calls; paid creates retried only when nothing can have been created."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from reconciler.errors import AmbiguousSubmitError, NovitaError, NovitaTransportError
from reconciler.novita import RetryInfo
from tests.novita_fixtures import Sleeps, jresp, make_client, nerror, run

OK_STATUS = {"task_id": "t", "task_status": "TRAINING"}


def script(*steps: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that plays the steps in order: a response is returned, an exception raised."""
    it: Iterator[httpx.Response | Exception] = iter(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        step = next(it)
        if isinstance(step, Exception):
            raise step
        return step

    return handler


@pytest.mark.parametrize(
    "failure",
    [
        nerror(429, "RATE_LIMIT_EXCEEDED"),
        nerror(500, "GET_RESULT_FAILED"),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(503),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_reads_retry_transient_failures(failure: httpx.Response | Exception) -> None:
    sleeps = Sleeps()
    retries: list[RetryInfo] = []
    client, api_rec, _ = make_client(script(failure, failure, jresp(200, OK_STATUS)), sleeps=sleeps, retries=retries)
    assert run(client.get_training("t")).task_status == "TRAINING"
    assert len(api_rec.requests) == 3
    assert len(sleeps.delays) == 2 and len(retries) == 2
    assert retries[0].attempt == 1 and retries[1].attempt == 2 and retries[0].url == "/v3/training/subject"


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    sleeps = Sleeps()
    failures = [nerror(503, "")] * 8
    client, _, _ = make_client(
        script(*failures, jresp(200, OK_STATUS)), sleeps=sleeps, max_retries=8, backoff_base=1.0, backoff_max=10.0
    )
    run(client.get_training("t"))
    assert len(sleeps.delays) == 8
    for attempt, delay in enumerate(sleeps.delays, start=1):
        assert 0 <= delay <= min(10.0, 2 ** (attempt - 1))


def test_gives_up_after_max_retries() -> None:
    sleeps = Sleeps()
    client, api_rec, _ = make_client(lambda r: nerror(503, "", "overloaded"), sleeps=sleeps, max_retries=3)
    with pytest.raises(NovitaError) as info:
        run(client.list_trainings())
    assert len(api_rec.requests) == 4 and len(sleeps.delays) == 3
    assert info.value.status == 503 and not isinstance(info.value, AmbiguousSubmitError)


def test_transport_errors_after_retries_are_transport_errors() -> None:
    client, api_rec, _ = make_client(script(*[httpx.ConnectError("refused")] * 3), max_retries=2)
    with pytest.raises(NovitaTransportError, match=r"no usable answer after 3 attempts: ConnectError: refused"):
        run(client.task_result("g"))
    assert len(api_rec.requests) == 3


def test_retry_after_seconds_is_honoured() -> None:
    sleeps = Sleeps()
    retries: list[RetryInfo] = []
    client, _, _ = make_client(
        script(nerror(429, "RATE_LIMIT_EXCEEDED", **{"Retry-After": "7"}), jresp(200, OK_STATUS)),
        sleeps=sleeps,
        retries=retries,
        backoff_base=0.01,
    )
    run(client.get_training("t"))
    assert sleeps.delays == [7.0]
    assert retries[0].status == 429 and retries[0].reason == "RATE_LIMIT_EXCEEDED" and retries[0].delay == 7.0


def test_retry_after_http_date_is_honoured() -> None:
    sleeps = Sleeps()
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    client, _, _ = make_client(
        script(nerror(503, "", **{"Retry-After": when}), jresp(200, OK_STATUS)), sleeps=sleeps, backoff_base=0.01
    )
    run(client.get_training("t"))
    assert 17 <= sleeps.delays[0] <= 21


def test_hostile_retry_after_is_bounded() -> None:
    sleeps = Sleeps()
    client, _, _ = make_client(
        script(
            nerror(429, "", **{"Retry-After": "99999999"}),
            nerror(429, "", **{"Retry-After": "soon"}),
            jresp(200, OK_STATUS),
        ),
        sleeps=sleeps,
        backoff_base=0.01,
        backoff_max=30,
    )
    run(client.get_training("t"))
    assert sleeps.delays[0] == 60.0 and sleeps.delays[1] <= 0.02  # unparseable: plain backoff


# ------------------------------------------------------------------------------------------ creates


@pytest.mark.parametrize(
    "failure",
    [
        nerror(429, "RATE_LIMIT_EXCEEDED"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("connect timeout"),
        httpx.PoolTimeout("pool"),
    ],
)
@pytest.mark.parametrize("kind", ["training", "generation"])
def test_creates_retry_when_nothing_was_created(failure: httpx.Response | Exception, kind: str) -> None:
    sleeps = Sleeps()
    client, api_rec, _ = make_client(script(failure, jresp(200, {"task_id": "new"})), sleeps=sleeps)
    if kind == "training":
        task_id = run(client.create_training("subject", {"name": "a-01234567"}))
    else:
        task_id = run(client.create_generation("txt2img", {"extra": {}, "request": {}}))
    assert task_id == "new" and len(api_rec.requests) == 2 and len(sleeps.delays) == 1


@pytest.mark.parametrize(
    "failure",
    [
        # a gateway may create the task and then answer any 5xx: seen with 500 CREATE_TASK_FAILED and 503
        nerror(500, "CREATE_TASK_FAILED", "failed to create task"),
        httpx.Response(503, text="<html>service unavailable</html>"),
        nerror(503, "", "overloaded"),
        nerror(500, "BILLING_FAILED"),
        nerror(500, "TASK_FAILED"),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(504),
        httpx.ReadTimeout("no answer"),
        httpx.ReadError("reset"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.Response(200, text="{truncated"),
        jresp(200, {"data": {"task_id": "v2-shape"}}),
    ],
)
@pytest.mark.parametrize("kind", ["training", "generation"])
def test_creates_are_ambiguous_when_the_request_may_have_landed(failure: httpx.Response | Exception, kind: str) -> None:
    sleeps = Sleeps()
    client, api_rec, _ = make_client(script(failure, jresp(200, {"task_id": "dup"})), sleeps=sleeps)
    with pytest.raises(AmbiguousSubmitError) as info:
        if kind == "training":
            run(client.create_training("style", {"name": "a-01234567"}))
        else:
            run(client.create_generation("img2img", {"extra": {}, "request": {}}))
    assert len(api_rec.requests) == 1 and sleeps.delays == []
    assert "may or may not exist" in str(info.value) or "no task_id" in str(info.value)
    assert isinstance(info.value, NovitaError)


def test_create_4xx_is_plain_error_not_retried() -> None:
    client, api_rec, _ = make_client(lambda r: nerror(400, "BILLING_BALANCE_NOT_ENOUGH", "insufficient balance"))
    with pytest.raises(NovitaError) as info:
        run(client.create_generation("txt2img", {"extra": {}, "request": {}}))
    assert not isinstance(info.value, AmbiguousSubmitError)
    assert info.value.reason == "BILLING_BALANCE_NOT_ENOUGH" and len(api_rec.requests) == 1


def test_create_rate_limited_until_out_of_retries_is_not_ambiguous() -> None:
    client, api_rec, _ = make_client(lambda r: nerror(429, "RATE_LIMIT_EXCEEDED"), max_retries=2)
    with pytest.raises(NovitaError) as info:
        run(client.create_generation("txt2img", {"extra": {}, "request": {}}))
    assert not isinstance(info.value, AmbiguousSubmitError) and info.value.status == 429
    assert len(api_rec.requests) == 3


def test_ambiguous_5xx_keeps_status_and_reason() -> None:
    client, _, _ = make_client(lambda r: nerror(500, "BILLING_FAILED", "billing service error"))
    with pytest.raises(AmbiguousSubmitError) as info:
        run(client.create_training("subject", {}))
    assert info.value.status == 500 and info.value.reason == "BILLING_FAILED"
    assert str(info.value).startswith("Novita POST /v3/training/subject: 500 BILLING_FAILED: billing service error")


def test_slow_drip_is_cut_by_the_deadline() -> None:
    import asyncio

    async def drip() -> object:
        yield b'{"task_id":'
        await asyncio.sleep(5)
        yield b'"x"}'

    client, _, _ = make_client(lambda r: httpx.Response(200, content=drip()), timeout=0.1, max_retries=0)
    started = time.monotonic()
    with pytest.raises(AmbiguousSubmitError):
        run(client.create_training("subject", {}))
    with pytest.raises(NovitaTransportError):
        run(client.get_training("t"))
    assert time.monotonic() - started < 3


def test_undecodable_bodies() -> None:
    """A body that does not decode as its Content-Encoding: an error for reads, ambiguous for creates."""

    async def body() -> AsyncIterator[bytes]:
        yield b"not gzip at all"

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"Content-Encoding": "gzip"})

    client, api_rec, _ = make_client(garbage)
    with pytest.raises(NovitaError, match="DecodingError"):
        run(client.get_training("t"))
    with pytest.raises(AmbiguousSubmitError):
        run(client.create_training("subject", {}))
    assert len(api_rec.requests) == 2


def test_halt_ends_a_retry_wait_at_once_with_the_last_error() -> None:
    """Ctrl-C: a call waiting to retry (here a Retry-After of 60 s) raises its last error at once."""
    import asyncio

    async def main() -> tuple[float, NovitaError]:
        client, api_rec, _ = make_client(
            lambda r: nerror(429, "RATE_LIMIT_EXCEEDED", **{"Retry-After": "60"}), sleeps=asyncio.sleep
        )
        call = asyncio.ensure_future(client.create_generation("txt2img", {"extra": {}, "request": {}}))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        client.halt()
        with pytest.raises(NovitaError) as info:
            await call
        assert len(api_rec.requests) == 1
        with pytest.raises(NovitaError):  # halted: no waiting at all any more
            await client.get_training("t")
        assert len(api_rec.requests) == 2
        return time.monotonic() - began, info.value

    waited, error = asyncio.run(main())
    assert waited < 1 and error.status == 429 and not isinstance(error, AmbiguousSubmitError)

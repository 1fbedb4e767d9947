"""What every part of an apply shares (`apply/context.Run`): stopping at once whatever is waited on, a create on
the wire let finish, and polling with its no-progress ceiling. Real asyncio, a real state file, a client whose
transport answers in process; only the clock of the stall test is fake."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.apply import ApplyOptions, Interrupted, IpmLimiter, Stalled, Watch
from reconciler.apply.context import Run
from reconciler.apply.outcome import Stuck, Task
from reconciler.apply.polling import Look, PollPolicy
from reconciler.desired.resources import Desired
from reconciler.novita import NovitaClient
from reconciler.state.file import StateStore
from reconciler.text import parse_duration


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str]] = []

    def emit(self, event: str, address: str | None = None, message: str = "", **data: Any) -> None:
        self.seen.append((event, address, message))

    def close(self) -> None:
        pass


def make_run(tmp_path: Path, handler: Any = None, clock: Any = time.monotonic, **options: Any) -> Run:
    def nothing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected {request.method} {request.url}")

    client = NovitaClient("k", "https://api.novita.test", transport=httpx.MockTransport(handler or nothing))
    desired = Desired({}, {}, {}, "digest")
    store = StateStore(tmp_path / "state.json")
    return Run(desired, store, client, Events(), ApplyOptions(**options), tmp_path, {}, clock=clock)


def test_stop_ends_every_wait_at_once(tmp_path: Path) -> None:
    """Hundreds of resources queued behind the throttle, the slots and poll intervals: one stop ends them all in
    milliseconds (the throttle would have held the last of them for half an hour)."""

    async def main() -> tuple[float, list[BaseException | None]]:
        run = make_run(tmp_path, parallelism=2)
        throttle = IpmLimiter(20)

        async def generation() -> None:
            await throttle.acquire(1)
            async with run.slots:
                await run.pause(3600)

        tasks = [run.spawn(generation()) for _ in range(600)]
        await asyncio.sleep(0.2)
        began = time.monotonic()
        run.stop()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        return time.monotonic() - began, [o if isinstance(o, BaseException) else None for o in outcomes]

    took, outcomes = asyncio.run(main())
    assert took < 1.0, f"{took:.2f}s to stop"
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


def test_a_create_on_the_wire_gets_its_answer_after_a_stop_and_a_second_stop_abandons_it(tmp_path: Path) -> None:
    async def main() -> None:
        run = make_run(tmp_path)
        answer = asyncio.Event()
        recorded: list[str] = []

        async def create() -> str:
            await answer.wait()
            return "task-1"

        async def submit() -> None:
            task_id = await run.submitting(create)
            recorded.append(task_id)  # the caller records the id, then meets the stop
            run.check_stop()

        task = run.spawn(submit())
        await asyncio.sleep(0.05)
        run.stop()
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting for the answer
        answer.set()
        with pytest.raises(Interrupted):
            await task
        assert recorded == ["task-1"]

        never = asyncio.Event()

        async def hanging() -> str:
            await never.wait()
            return "task-2"

        second = make_run(tmp_path)
        task = second.spawn(second.submitting(hanging))
        await asyncio.sleep(0.05)
        second.stop()
        await asyncio.sleep(0.05)
        assert not task.done()
        second.stop()  # the second Ctrl-C: do not wait for it
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_wait_for_reports_a_task_that_stops_making_progress(tmp_path: Path) -> None:
    now = [0.0]
    run = make_run(tmp_path, clock=lambda: now[0])
    statuses = iter(["QUEUING"] * 3 + ["TRAINING 10%", "TRAINING 40%"] + ["TRAINING 40%"] * 20)
    looks: list[str] = []

    async def look() -> str:
        now[0] += 600  # ten minutes between looks
        looks.append(next(statuses))
        return looks[-1]

    async def settle(status: str) -> str | None:
        return None

    async def main() -> None:
        await run.wait_for(
            look,
            settle,
            Watch(PollPolicy.every(0.0), 3600),
            lambda s: Look(),
            progress=lambda s: s,
            what=Task.training("x-1"),
        )

    with pytest.raises(Stalled) as info:
        asyncio.run(main())
    assert info.value.outcome == Stuck(Task.training("x-1"), 3600, "TRAINING 40%")
    assert looks[:5] == ["QUEUING", "QUEUING", "QUEUING", "TRAINING 10%", "TRAINING 40%"]
    assert len(looks) == 11  # progress at the 5th look; 6 more looks = one hour without any


def test_wait_for_without_a_ceiling_polls_until_done(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    seen = iter(["QUEUED", "QUEUED", "QUEUED", "SUCCEED"])

    async def look() -> str:
        return next(seen)

    async def settle(status: str) -> str | None:
        return "done" if status == "SUCCEED" else None

    assert asyncio.run(run.wait_for(look, settle, Watch(PollPolicy.every(0.0)), lambda s: Look())) == "done"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5), ("2h0m5s", 7205)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5x", "-5m", "1h 30m", "30 minutes"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: use e\.g\. 90s, 30m, 1h30m"):
        parse_duration(text)

"""The poll policy: a fraction of Novita's estimate, bounded, jittered; backing off without an estimate."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from reconciler.apply.polling import GENERATION, TRAINING, Look, PollPolicy


def _wait(policy: PollPolicy, total: float, draws: random.Random) -> tuple[int, float]:
    """Poll a task that serves `total` seconds after the first look, with an exact whole-second estimate (as
    the simulator gives): (looks made, seconds from serving to the look that saw it)."""
    now, looks, misses = 0.0, 0, 0
    while True:
        looks += 1
        if now >= total:
            return looks, now - total
        look = Look(eta=math.ceil(total - now), elapsed=now)
        now += policy.next(look, misses, draws.random())
        misses = 0 if policy.estimate(look) is not None else misses + 1


def test_a_ten_minute_training_takes_at_most_30_looks_and_is_seen_within_2_s() -> None:
    for seed in range(200):
        looks, late = _wait(TRAINING, 600.0, random.Random(seed))
        assert looks <= 30 and late <= 2.0, (seed, looks, late)
    fixed, _ = _wait(PollPolicy.every(10), 600.0, random.Random(0))
    assert fixed == 61  # the old fixed 10 s poll, for comparison


def test_short_tasks_are_not_overshot() -> None:
    for total in (3.0, 5.0, 12.0):
        for seed in range(50):
            _, late = _wait(TRAINING, total, random.Random(seed))
            assert late <= 0.6, (total, seed, late)
    for seed in range(50):  # a 0.7 s image task estimated at a whole second: seen within about half of it
        _, late = _wait(GENERATION, 0.7, random.Random(seed))
        assert late <= 0.6, (seed, late)


def test_no_estimate_backs_off_from_the_shortest_interval() -> None:
    quiet = PollPolicy(low=1.0, high=30.0, jitter=0.0)
    intervals = [quiet.next(Look(), misses, 0.5) for misses in range(12)]
    assert intervals[:4] == [1.0, 1.5, 2.25, 3.375]
    assert intervals[-1] == 30.0 and intervals == sorted(intervals)


def test_progress_stands_in_for_a_missing_estimate() -> None:
    quiet = PollPolicy(low=1.0, high=30.0, jitter=0.0)
    assert quiet.next(Look(progress=80, elapsed=40), 0, 0.5) == 5.0  # 10 s left: look in half of that
    assert quiet.next(Look(eta=0, progress=100, elapsed=40), 0, 0.5) == 1.0  # done by its own account: soon


def test_a_fixed_interval_overrides_everything() -> None:
    assert PollPolicy.every(10).next(Look(eta=3), 0, 0.9) == 10
    assert PollPolicy.every(0.25).next(Look(), 7, 0.1) == 0.25


@given(
    st.one_of(st.none(), st.floats(-10, 1e6)),
    st.one_of(st.none(), st.floats(-5, 105)),
    st.floats(0, 1e6),
    st.integers(0, 200),
    st.floats(0, 0.999999),
)
def test_always_within_bounds(
    eta: float | None, progress: float | None, elapsed: float, misses: int, draw: float
) -> None:
    for policy in (TRAINING, GENERATION):
        interval = policy.next(Look(eta, progress, elapsed), misses, draw)
        assert policy.low / 4 <= interval <= policy.high
        if policy.estimate(Look(eta, progress, elapsed)) is None:
            assert interval >= policy.low  # the shorter floor only when Novita says the end is near


def test_a_task_that_ends_within_the_shortest_interval_is_looked_at_sooner() -> None:
    quiet = PollPolicy(low=1.0, high=30.0, jitter=0.0)
    assert quiet.next(Look(eta=1), 0, 0.5) == 0.5  # half of the last second, not a whole second
    assert quiet.next(Look(eta=0.2), 0, 0.5) == 0.25  # never sooner than a quarter of the shortest interval
    assert quiet.next(Look(eta=1.5), 0, 0.5) == 1.0  # not yet near: the shortest interval


def test_wait_for_paces_by_what_each_look_said(tmp_path: Path) -> None:
    """Run.wait_for asks the policy after every look; here its pauses are recorded instead of slept."""
    from reconciler.apply.context import ApplyOptions, Run, Watch
    from reconciler.state.file import StateStore

    run = Run(None, StateStore(tmp_path / "state.json"), None, None, ApplyOptions(), tmp_path, {})  # type: ignore[arg-type]
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    run.pause = pause  # type: ignore[method-assign]
    said = iter([(40.0, None), (12.0, None), (None, None), (None, None), (0.0, 100.0), (None, None)])

    async def look() -> tuple[float | None, float | None]:
        return next(said)

    async def settle(seen: tuple[float | None, float | None]) -> str | None:
        return "done" if len(pauses) == 5 else None

    quiet = PollPolicy(low=1.0, high=30.0, jitter=0.0)
    assert asyncio.run(run.wait_for(look, settle, Watch(quiet), lambda s: Look(*s))) == "done"
    # half of each estimate; then none (or one that ran out while the task still runs): back off from 1 s
    assert pauses == [20.0, 6.0, 1.0, 1.5, 2.25]

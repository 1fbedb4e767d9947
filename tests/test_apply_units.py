"""The applier's small machines: the images-per-minute throttle and the state group commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reconciler.apply import ApplyResult, Committer, IpmLimiter
from reconciler.state.file import StateStore


def test_ipm_limiter_never_exceeds_the_limit_in_any_window() -> None:
    now = [0.0]
    granted: list[tuple[float, int]] = []

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    async def main() -> None:
        limiter = IpmLimiter(20, clock=lambda: now[0], sleep=fake_sleep)
        for n in [4, 8, 8, 2, 6, 8, 1, 8, 8, 4]:
            await limiter.acquire(n)
            granted.append((now[0], n))

    asyncio.run(main())
    assert sum(n for _, n in granted) == 57
    for t, _ in granted:
        in_window = sum(n for s, n in granted if t - 60 < s <= t)
        assert in_window <= 20, (t, granted)
    # it waits only as long as needed: the whole run fits in the fewest windows possible
    assert granted[-1][0] < 3 * 60 + 1


def test_ipm_window_counts_from_when_a_request_left() -> None:
    """A grant whose request left late (the state save before it was slow) holds its images in the window
    until 60 s after it left, so Novita, which counts arrivals, never sees 21 images in a minute."""
    now = [0.0]
    left: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    async def main() -> None:
        limiter = IpmLimiter(20, clock=lambda: now[0], sleep=fake_sleep)
        for i in range(60):
            grant = await limiter.acquire(1)
            now[0] += 0.4 if i % 20 == 0 else 0.01  # the save before the request: slow now and then
            limiter.sent(grant)
            left.append(now[0])

    asyncio.run(main())
    for t in left:
        assert sum(1 for s in left if t - 60 < s <= t) <= 20, t


def test_group_commit_saves_once_for_concurrent_changes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    writes: list[int] = []
    original = store.write

    def counting_write(text: str) -> None:
        writes.append(store.state.serial)
        original(text)

    store.write = counting_write  # type: ignore[method-assign]

    async def main() -> None:
        committer = Committer(store)
        await asyncio.gather(*(committer.commit() for _ in range(10)))

    asyncio.run(main())
    assert 1 <= len(writes) <= 2  # the first change is written; the nine that queued behind it share one write
    assert StateStore(tmp_path / "state.json").state.serial == len(writes)


def test_summary_line() -> None:
    result = ApplyResult(uploaded=3, trained=1, adopted=1, generated=2, images=4, elapsed=662)
    assert (
        result.summary()
        == "Apply complete: 3 uploaded, 1 trained, 1 adopted, 2 generated (4 images), 0 failed in 11m02s."
    )
    result.failed["LoraModel/x"] = "boom"
    result.skipped["Generation/y"] = "LoraModel/x failed"
    assert result.summary().startswith("Apply failed: 3 uploaded")
    assert result.summary().endswith("1 failed, 1 skipped in 11m02s.")


def test_a_sidecar_write_clears_the_temporary_file_a_kill_left(tmp_path: Path) -> None:
    """A SIGKILL during the sidecar's atomic write leaves `.<name>.reconciler.json.<random>.part`; the next
    apply, which writes the sidecar again, removes it (seen by the crash suite)."""
    from dataclasses import replace

    from reconciler.outputs.folders import sidecar_path, write_sidecar

    from .planner_fixtures import generation

    gen = replace(generation(), output_dir=tmp_path / "out")
    gen.output_dir.mkdir()
    left = gen.output_dir / f".{sidecar_path(gen).name}.x1y2z3.part"
    left.write_text("{")
    write_sidecar(gen, {"generation": gen.name})
    assert sorted(p.name for p in gen.output_dir.iterdir()) == ["portraits.reconciler.json"]


def test_summary_with_no_wait_says_what_waits_and_is_complete() -> None:
    result = ApplyResult(uploaded=13, elapsed=2)
    result.submitted_not_waited.append("LoraModel/alice-v1")
    result.deferred["Generation/a"] = "LoraModel/alice-v1 is still training (--no-wait)"
    result.deferred["Generation/b"] = "LoraModel/alice-v1 is still training (--no-wait)"
    assert result.ok
    assert result.summary() == (
        "Apply complete: 13 uploaded, 0 trained, 0 adopted, 0 generated (0 images), 0 failed, "
        "2 left for the next apply (waiting for trainings in flight) in 2s."
    )
    assert result.counts()["deferred"] == 2


def test_summary_counts_resubmits_stalls_and_the_deadline() -> None:
    result = ApplyResult(generated=2, images=2, elapsed=65)
    result.resubmitted += ["Generation/a", "Generation/a"]
    assert result.ok
    assert result.summary() == (
        "Apply complete: 0 uploaded, 0 trained, 0 adopted, 2 generated (2 images), 0 failed, "
        "2 resubmitted after no answer (may be paid twice) in 1m05s."
    )
    result.stalled["LoraModel/x"] = "training x-1: no progress for 1h00m00s (still QUEUING)"
    assert not result.ok and result.summary().startswith("Apply timed out: ")
    assert ", 1 stalled, 2 resubmitted after no answer" in result.summary()
    result.stalled.clear()
    result.timed_out = True
    assert result.summary().startswith("Apply timed out: ")
    result.failed["Generation/b"] = "boom"
    assert result.summary().startswith("Apply failed: ")
    result.interrupted = True
    assert result.summary().startswith("Apply interrupted: ")
    counts = result.counts()
    assert (counts["resubmitted"], counts["timed_out"], counts["interrupted"]) == (2, True, True)

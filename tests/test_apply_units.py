"""The applier's small machines: the images-per-minute throttle and the state group commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.apply import ApplyResult, Committer, IpmLimiter
from reconciler.apply.outcome import (
    Blocked,
    Cause,
    ClientError,
    Failed,
    Held,
    NoImages,
    NoModelName,
    NotInAccount,
    OutputsChanged,
    Postponed,
    Rejected,
    Stopped,
    Stuck,
    Submitted,
    Task,
    TaskEnded,
    Unanswered,
    UnknownStatus,
    UploadFailed,
)
from reconciler.present import outcome as words
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
        words.summary(result)
        == "Apply complete: 3 uploaded, 1 trained, 1 adopted, 2 generated (4 images), 0 failed in 11m02s."
    )
    boom = Failed(ClientError("boom"))
    result.outcomes.update({"LoraModel/x": boom, "Generation/y": Blocked("LoraModel/x", boom)})
    assert words.summary(result).startswith("Apply failed: 3 uploaded")
    assert words.summary(result).endswith("1 failed, 1 skipped in 11m02s.")


def test_a_sidecar_write_clears_the_temporary_file_a_kill_left(tmp_path: Path) -> None:
    """A SIGKILL during the sidecar's atomic write leaves `.<name>.reconciler.json.<random>.part`; the next
    apply, which writes the sidecar again, removes it (seen by the crash suite)."""
    from dataclasses import replace

    from reconciler.outputs.folders import sidecar_path, write_sidecar

    from .planner_fixtures import generation
    from .sidecars import sidecar

    gen = replace(generation(), output_dir=tmp_path / "out")
    gen.output_dir.mkdir()
    left = gen.output_dir / f".{sidecar_path(gen).name}.x1y2z3.part"
    left.write_text("{")
    write_sidecar(gen, sidecar(gen.name, [("portraits-1.png", "0" * 64)]))
    assert sorted(p.name for p in gen.output_dir.iterdir()) == ["portraits.reconciler.json"]


def test_summary_with_no_wait_says_what_waits_and_is_complete() -> None:
    result = ApplyResult(uploaded=13, elapsed=2)
    result.outcomes["LoraModel/alice-v1"] = Submitted()
    result.outcomes["Generation/a"] = result.outcomes["Generation/b"] = Postponed("LoraModel/alice-v1")
    assert result.ok
    assert words.summary(result) == (
        "Apply complete: 13 uploaded, 0 trained, 0 adopted, 0 generated (0 images), 0 failed, "
        "2 left for the next apply (waiting for trainings in flight) in 2s."
    )
    assert result.counts()["deferred"] == 2
    assert result.counts()["submitted_not_waited"] == ["LoraModel/alice-v1"]


def test_summary_counts_resubmits_stalls_and_the_deadline() -> None:
    result = ApplyResult(generated=2, images=2, elapsed=65)
    result.resubmitted += ["Generation/a", "Generation/a"]
    assert result.ok
    assert words.summary(result) == (
        "Apply complete: 0 uploaded, 0 trained, 0 adopted, 2 generated (2 images), 0 failed, "
        "2 resubmitted after no answer (may be paid twice) in 1m05s."
    )
    result.outcomes["LoraModel/x"] = Stuck(Task.training("x-1"), 3600, "QUEUING")
    assert not result.ok and words.summary(result).startswith("Apply timed out: ")
    assert ", 1 stalled, 2 resubmitted after no answer" in words.summary(result)
    del result.outcomes["LoraModel/x"]
    result.timed_out = True
    assert words.summary(result).startswith("Apply timed out: ")
    result.outcomes["Generation/b"] = Failed(ClientError("boom"))
    assert words.summary(result).startswith("Apply failed: ")
    result.interrupted = True
    assert words.summary(result).startswith("Apply interrupted: ")
    counts = result.counts()
    assert (counts["resubmitted"], counts["timed_out"], counts["interrupted"]) == (2, True, True)


STAYS = "it stays recorded as {} and the next apply checks it again"
CAUSES: list[tuple[Cause, str]] = [
    (
        Rejected("400 INVALID_IMAGE_FORMAT: not a png"),
        "Novita rejected Generation/g: 400 INVALID_IMAGE_FORMAT: not a png",
    ),
    (ClientError("Novita POST /v3/x: no answer after 5 tries"), "Novita POST /v3/x: no answer after 5 tries"),
    (
        UploadFailed("img/a.jpg", "Novita PUT http://s3/x: 503 Slow Down"),
        "could not upload img/a.jpg: Novita PUT http://s3/x: 503 Slow Down",
    ),
    (TaskEnded(Task.training("alice-0123abcd"), "FAILED"), "training alice-0123abcd ended FAILED on Novita"),
    (TaskEnded(Task("txt2img", "t-1"), "TASK_FAILED: nsfw"), "txt2img task t-1 failed on Novita: TASK_FAILED: nsfw"),
    (
        UnknownStatus(Task.training("alice-0123abcd"), "EXPLODED"),
        "training alice-0123abcd: Novita reports an unknown status 'EXPLODED'; " + STAYS.format("training"),
    ),
    (
        UnknownStatus(Task("img2img", "t-2"), "TASK_STATUS_EXPLODED"),
        "img2img task t-2: Novita reports an unknown status 'TASK_STATUS_EXPLODED'; " + STAYS.format("running"),
    ),
    (
        NoModelName(Task.training("alice-0123abcd")),
        "training alice-0123abcd: Novita reports it SERVING but names no model; " + STAYS.format("training"),
    ),
    (NoImages(Task("txt2img", "t-3")), "txt2img task t-3 succeeded without images"),
    (
        NotInAccount(Task.training("alice-0123abcd")),
        "training alice-0123abcd is not in the account any more; plan again",
    ),
    (
        Unanswered(Task.training("alice-0123abcd"), 4, "ReadTimeout"),
        "no answer to 4 submits of alice-0123abcd, and the account does not list it; it stays recorded as "
        "unanswered: the next apply looks it up again before submitting",
    ),
    (
        Unanswered(Task("txt2img", ""), 4, "RemoteProtocolError"),
        "no answer from Novita to 4 txt2img submits (last: RemoteProtocolError); each may have been accepted. "
        "The next apply submits it again (on_unanswered_submit: resubmit).",
    ),
    (
        Held("txt2img", "RemoteProtocolError"),
        "no answer from Novita to the txt2img submit (RemoteProtocolError); it may or may not have been accepted, "
        "and Novita cannot list generation tasks, so it is held (on_unanswered_submit: hold), not submitted again "
        "on its own: run `reconciler apply --replace Generation/g` to submit it again.",
    ),
    (OutputsChanged("outputs/g"), "its images in outputs/g changed since the plan; plan again"),
]


@pytest.mark.parametrize(("cause", "text"), CAUSES, ids=[type(c).__name__ for c, _ in CAUSES])
def test_each_cause_of_failure_in_words(cause: Cause, text: str) -> None:
    assert words.cause(cause, "Generation/g") == text


def test_why_a_resource_was_not_done_in_words() -> None:
    failed = Failed(TaskEnded(Task.training("a-1"), "FAILED"))
    assert words.blocked(Blocked("LoraModel/a", failed)) == "LoraModel/a failed: training a-1 ended FAILED on Novita"
    assert words.blocked(Blocked("LoraModel/a")) == "LoraModel/a has no trained model yet"
    assert words.blocked(Blocked("LoraModel/a", Blocked("LoraModel/b"))) == (
        "LoraModel/a was skipped (LoraModel/b has no trained model yet)"
    )
    assert words.postponed(Postponed("LoraModel/a")) == (
        "LoraModel/a is still training (--no-wait); apply again to generate"
    )
    assert words.postponed(Postponed("LoraModel/a", stalled=True)) == (
        "LoraModel/a is still training (no progress lately, see above)"
    )
    assert words.stuck(Stuck(Task("txt2img", "t-1"), 600, "QUEUED")) == (
        "txt2img task t-1: no progress for 10m00s (still QUEUED); stopped waiting: it stays recorded as in flight "
        "and the next apply checks it again"
    )
    assert words.stopped(Stopped("interrupt", "waiting")) == "interrupted while waiting (it keeps running on Novita)"
    assert words.stopped(Stopped("timeout", "submitting")) == (
        "the deadline (--timeout) passed while submitting it (the next apply resolves it)"
    )
    assert words.stopped(Stopped("interrupt", "before-submit")) == "interrupted before it was submitted"


def test_a_refused_create_keeps_an_unanswered_submit_this_apply_sent() -> None:
    """Rolled back after a refusal (no balance, a stop before sending): the entry goes back to what the state held,
    unless this apply already sent a create for it that got no answer: that one stays on record to be looked up."""
    from reconciler.apply.context import keeps_unanswered
    from reconciler.state import GenerationEntry, ModelEntry

    before = ModelEntry(name="m", identity="a" * 64, unanswered_submits=1)
    assert not keeps_unanswered(ModelEntry(name="m", identity="a" * 64, unanswered_submits=1), before)
    assert keeps_unanswered(ModelEntry(name="m", identity="a" * 64, unanswered_submits=2), before)
    assert keeps_unanswered(ModelEntry(name="m", identity="b" * 64, unanswered_submits=1), before)  # another request
    assert not keeps_unanswered(GenerationEntry(name="g", identity="c" * 64), None)
    assert keeps_unanswered(GenerationEntry(name="g", identity="c" * 64, unanswered_submits=1), None)

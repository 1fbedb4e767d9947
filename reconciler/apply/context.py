"""What every part of one apply shares: the plan's inputs, the state and its committer, the client, the
reporter, the concurrency slots and throttles, the stop (Ctrl-C, the deadline), polling, and the running result.

Stopping: every resource runs as a task of this Run (`spawn`). `stop()` (the first Ctrl-C, SIGTERM, or the
`--timeout` deadline) cancels them all at once, whatever they wait on (a throttle, a slot, a poll interval, a
dependency, a retry), and halts the client's retries; only a create call already on the wire is let finish
(`submitting`), so the task id it returns reaches the state. A second stop abandons those too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from reconciler.apply.billing import Billing, is_unfunded, unfunded
from reconciler.apply.commit import Committer
from reconciler.apply.outcome import (
    Adopted,
    ApplyResult,
    Interrupted,
    ResourceFailed,
    Stalled,
    StopReason,
    Stuck,
    Task,
    TaskEnded,
)
from reconciler.apply.polling import GENERATION, TRAINING, Look, PollPolicy
from reconciler.apply.slots import Slots
from reconciler.apply.throttle import IpmLimiter
from reconciler.desired.resources import Desired
from reconciler.errors import AmbiguousSubmitError, NovitaError, NovitaTransportError
from reconciler.novita import NovitaClient, error_detail, unanswered_cause
from reconciler.observe.facts import OutputFacts
from reconciler.outputs.store import OutputsRemote
from reconciler.plan.policy import SubmitPolicy
from reconciler.present.progress import Reporter
from reconciler.state import GenerationEntry, ModelEntry, ResourceEntry, State, now_iso
from reconciler.state.backend import Store
from reconciler.state.reconnect import StateLost
from reconciler.status import Status
from reconciler.text import duration

DEFAULT_IPM = {"txt2img": 20, "img2img": 10}
# A task whose status has not moved for this long is reported and no longer waited on (`--stall-timeout`).
TRAINING_STALL = 3600.0
GENERATION_STALL = 600.0
# After an unanswered create: a training's name is looked up at once and again after each of these pauses (a
# listing may lag a create) before anything is sent again; a generation is submitted again after the n-th of them.
UNANSWERED_DELAYS = (1.0, 2.0, 4.0)
# Creates of one resource in one apply (the first and those after unanswered ones) before it is left to the next.
SUBMIT_ATTEMPTS = 4

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class Watch:
    """How a kind of task is waited for: when to look again (`poll`), and how long its status may show no progress
    before the apply stops waiting on it and reports it (`stall_after`, --stall-timeout; None: no ceiling)."""

    poll: PollPolicy
    stall_after: float | None = None


@dataclass
class ApplyOptions:
    parallelism: int = 16
    wait: bool = True
    prune: bool = False
    ipm: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_IPM))
    # polling by Novita's estimate (--poll-interval: PollPolicy.every(seconds)); the no-progress ceilings
    training: Watch = Watch(TRAINING, TRAINING_STALL)
    generation: Watch = Watch(GENERATION, GENERATION_STALL)
    timeout: float | None = None  # --timeout: stop waiting (and submitting) after this many seconds
    unanswered_delays: tuple[float, ...] = UNANSWERED_DELAYS
    policy: SubmitPolicy = field(default_factory=SubmitPolicy)


def keeps_unanswered(entry: ModelEntry | GenerationEntry, previous: ResourceEntry | None) -> bool:
    """Whether a create refused with nothing made must keep `entry` rather than go back to `previous`: this apply
    already sent a create for it that got no answer (a task may exist; the next apply looks it up)."""
    before = 0
    if isinstance(previous, ModelEntry | GenerationEntry) and previous.identity == entry.identity:
        before = previous.unanswered_submits
    return entry.unanswered_submits > before


def halted_before_sent(error: NovitaError) -> bool:
    """A create that failed after a stop halted the client's retries, in a way that proves nothing was made:
    rate limited (429), or never sent (the client raises a transport error on a create only then)."""
    return error.status == 429 or (isinstance(error, NovitaTransportError) and error.status is None)


@dataclass(eq=False, repr=False)  # one apply: compared by identity
class Run:
    """One apply in progress: what it works with (the desired resources, the state, the client, the reporter, the
    options, the project's outputs). Handed to the Applier, which hands it to the uploader, trainer and generator."""

    desired: Desired
    store: Store
    client: NovitaClient
    report: Reporter
    options: ApplyOptions
    root: Path  # the project folder
    outputs: dict[str, OutputFacts]  # each generation's outputs as observed for the plan
    outputs_remote: OutputsRemote | None = None  # where every generated image is stored before it counts as done
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.result = ApplyResult()
        self.committer = Committer(self.store, self._state_connection)
        self.slots = Slots(self.options.parallelism)  # uploads queue by their training's turn; the rest go first
        self.limiters = {kind: IpmLimiter(n) for kind, n in self.options.ipm.items()}
        self.billing = Billing(self.client)  # paid creates one at a time; stopped when the balance runs out
        self.stopped: StopReason | None = None
        self.abandoned = False  # a second stop: creates on the wire are not waited for either
        self.finished: set[str] = set()  # addresses whose work is done (recorded), whatever a stop cuts after
        self._tasks: set[asyncio.Task[Any]] = set()
        self._creates: set[asyncio.Future[Any]] = set()

    @property
    def state(self) -> State:
        return self.store.state

    async def commit(self) -> None:
        """Save the state now (grouped with concurrent commits); returns once it is on disk. When the state is
        lost for good (its database gone for longer than the reconnect window, or taken over), the apply stops
        submitting and waiting at once, and the error (naming the journal) ends it."""
        try:
            await self.committer.commit()
        except StateLost:
            if self.stopped is None:
                self.stop("interrupt")
            raise

    def _state_connection(self, event: str, **data: Any) -> None:
        """The state's database went away and came back (a commit rode it out); nothing new is submitted meanwhile."""
        if event == "state_reconnecting":
            text = (
                f"lost the connection to the state's database ({data['reason']}): reconnecting for up to "
                f"{data['window']:g}s; nothing new is submitted meanwhile, polls and downloads go on"
            )
        else:
            text = f"reconnected to the state's database after {duration(data['after'])}; the apply goes on"
        self.emit(event, None, text, **data)

    # ---------------------------------------------------------------------------------------- stopping

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run one resource's work as a task that `stop()` cancels."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def stop(self, reason: StopReason = "interrupt") -> None:
        """Stop submitting and stop waiting, at once: every resource's task is cancelled wherever it waits.
        A second call also abandons the creates still on the wire (their resources stay `submitting`)."""
        if self.stopped is None:
            self.stopped = reason
            self.client.halt()
        else:
            self.abandoned = True
            for call in list(self._creates):
                call.cancel()
        for task in list(self._tasks):
            task.cancel()

    def check_stop(self) -> None:
        if self.stopped is not None:
            raise Interrupted()

    async def pause(self, seconds: float) -> None:
        """Sleep (a stop cancels it), then stop here if a stop came."""
        await asyncio.sleep(seconds)
        self.check_stop()

    async def submitting(self, create: Callable[[], Awaitable[T]]) -> T:
        """Run a paid create call to its end even if a stop comes meanwhile: the task id it returns must reach
        the state, or the next apply would have to guess. The caller records it, then meets the stop at its next
        `check_stop`. A second stop abandons the call (the resource stays `submitting`)."""

        async def call_it() -> T:
            return await create()

        call = asyncio.ensure_future(call_it())
        self._creates.add(call)
        call.add_done_callback(self._creates.discard)
        while True:
            try:
                return await asyncio.shield(call)
            except asyncio.CancelledError:
                if self.abandoned or call.cancelled():
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()  # this stop is met at the caller's next check_stop, once it recorded the id

    async def create(self, post: Callable[[], Awaitable[T]], *, then: Callable[[], None] | None = None) -> T:
        """A paid create call: the state (the resource recorded `submitting`) is committed first, so a kill during
        the POST is resolved on the next apply; `then` runs between the commit and the POST (a throttle's minute
        starts there). The call runs to its answer even if a stop comes meanwhile (`submitting`)."""

        async def commit_then_post() -> T:
            await self.commit()
            if then is not None:
                then()
            return await self.billing.paying(post)  # refused at once when the balance ran out in this apply

        return await self.submitting(commit_then_post)

    async def unanswered(self, entry: ModelEntry | GenerationEntry, error: AmbiguousSubmitError) -> str:
        """A create got no answer: record it `unanswered` (counted) and commit before anything else happens, so a
        kill from here on resolves it the same way. Returns the cause, as the messages name it."""
        cause = unanswered_cause(error)
        entry.status, entry.reason, entry.updated_at = Status.UNANSWERED, f"no answer: {cause}", now_iso()
        entry.unanswered_submits += 1
        await self.commit()
        return cause

    async def refused(
        self, entry: ModelEntry | GenerationEntry, previous: ResourceEntry | None, error: NovitaError
    ) -> NoReturn:
        """A create Novita refused (no task was made). When a stop halted its retries before anything was made (rate
        limited, or never sent), the state goes back to what it held before and the stop is met; otherwise the entry
        is recorded FAILED with Novita's reason and the error raised."""
        if is_unfunded(error):  # for want of balance: left for the next apply, after a top-up
            await unfunded(self, entry, previous, error)
        if self.stopped is not None and halted_before_sent(error):
            await self.roll_back(entry, previous)
            raise Interrupted() from error
        entry.status, entry.reason = Status.FAILED, error_detail(error)
        await self.commit()
        raise error

    async def roll_back(self, entry: ModelEntry | GenerationEntry, previous: ResourceEntry | None) -> None:
        """A create refused with nothing made: the state goes back to what it held before this resource's submit,
        committed; unless this apply already sent a create for it that got no answer, which stays on record
        (UNANSWERED, counted) so that the next apply looks it up instead of paying again."""
        if keeps_unanswered(entry, previous):
            entry.status, entry.updated_at = Status.UNANSWERED, now_iso()
        else:
            self.state.resources.pop(entry.address, None)
            if previous is not None:
                self.state.put(previous)
        await self.commit()

    async def accepted(self, entry: ModelEntry | GenerationEntry, task_id: str, status: Status) -> None:
        """Novita accepted the create: the entry records its task id and `status` (no reason), committed."""
        entry.task_id, entry.status, entry.reason, entry.updated_at = task_id, status, None, now_iso()
        await self.commit()

    async def task_failed(self, entry: ModelEntry | GenerationEntry, reason: str, task: Task, status: str) -> NoReturn:
        """The task ended without a result (Novita's `status`, or its reason): the entry is recorded FAILED with
        `reason`, committed, and the resource fails with TaskEnded."""
        entry.status, entry.reason, entry.updated_at = Status.FAILED, reason, now_iso()
        await self.commit()
        raise ResourceFailed(TaskEnded(task, status))

    # ---------------------------------------------------------------------------------------- polling

    async def wait_for(
        self,
        look: Callable[[], Awaitable[S]],
        settle: Callable[[S], Awaitable[R | None]],
        watch: Watch,
        pace: Callable[[S], Look],
        *,
        progress: Callable[[S], str] | None = None,
        what: Task | None = None,
    ) -> R:
        """Poll a task: `look` fetches its status, `settle` returns the result once it finished (or raises
        when it failed) and None while it runs; between looks, wait as long as `watch.poll` says from what `pace`
        reads in the status (Novita's estimate, progress; a stop ends the wait at once).

        `progress(status)` describes how far the task got (e.g. `TRAINING 45%`); when that has not changed for
        `watch.stall_after` seconds, `Stalled` is raised naming `what`: the task is reported, not polled forever (it
        stays recorded as in flight). The apply-wide deadline (`--timeout`) is a stop, so it ends this wait like
        Ctrl-C."""
        policy, stall_after = watch.poll, watch.stall_after
        began, misses = self.clock(), 0
        seen_progress: str | None = None
        since = began
        while True:
            self.check_stop()
            seen = await look()
            done = await settle(seen)
            if done is not None:
                return done
            if progress is not None and stall_after is not None and what is not None:
                now, where = self.clock(), progress(seen)
                if where != seen_progress:
                    seen_progress, since = where, now
                elif now - since >= stall_after:
                    raise Stalled(Stuck(what, now - since, where))
            said = dataclasses.replace(pace(seen), elapsed=self.clock() - began)
            interval = policy.next(said, misses, random.random())
            misses = 0 if policy.estimate(said) is not None else misses + 1
            await self.pause(interval)

    def emit(self, event: str, address: str | None, message: str, **data: Any) -> None:
        self.report.emit(event, address, message, **data)

    def adopted(self, address: str, message: str, **data: Any) -> None:
        """A resource taken over as it is (paid work found, nothing submitted): counted, its outcome, the event."""
        self.result.adopted += 1
        self.result.outcomes[address] = Adopted()
        self.emit("adopted", address, message, **data)

"""What every part of one apply shares: the plan's inputs, the state and its committer, the client, the
reporter, the concurrency slots and throttles, the stop flag, and the running result."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from reconciler.apply.commit import Committer
from reconciler.apply.outcome import ApplyResult, Interrupted
from reconciler.apply.polling import GENERATION, TRAINING, Look, PollPolicy
from reconciler.apply.slots import Slots
from reconciler.apply.throttle import IpmLimiter
from reconciler.desired import Desired
from reconciler.novita import NovitaClient
from reconciler.outputs_remote import OutputsRemote
from reconciler.progress import Reporter
from reconciler.remote import OutputFacts
from reconciler.state import State
from reconciler.state.backend import Store

DEFAULT_IPM = {"txt2img": 20, "img2img": 10}

S = TypeVar("S")
R = TypeVar("R")


@dataclass
class ApplyOptions:
    parallelism: int = 8
    wait: bool = True
    prune: bool = False
    ipm: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_IPM))
    training_poll: PollPolicy = TRAINING  # by Novita's estimate; --poll-interval: PollPolicy.every(seconds)
    generation_poll: PollPolicy = GENERATION


class Run:
    """One apply in progress. Created by the Applier; handed to the uploader, trainer and generator."""

    def __init__(
        self,
        desired: Desired,
        store: Store,
        client: NovitaClient,
        reporter: Reporter,
        options: ApplyOptions,
        project_root: Path,
        outputs: dict[str, OutputFacts],
        outputs_remote: OutputsRemote | None = None,
    ) -> None:
        self.desired = desired
        self.store = store
        self.client = client
        self.report = reporter
        self.options = options
        self.root = project_root
        self.outputs = outputs
        self.outputs_remote = outputs_remote  # where every generated image is stored before it counts as done
        self.result = ApplyResult()
        self.committer = Committer(store)
        self.slots = Slots(options.parallelism)  # uploads queue by their training's turn; the rest go first
        self.limiters = {kind: IpmLimiter(n, sleep=self._throttled) for kind, n in options.ipm.items()}
        self.stop = asyncio.Event()

    @property
    def state(self) -> State:
        return self.store.state

    async def commit(self) -> None:
        """Save the state now (grouped with concurrent commits); returns once it is on disk."""
        await self.committer.commit()

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted()

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once on Ctrl-C."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return

    async def _throttled(self, seconds: float) -> None:
        """The images-per-minute wait before a submit: Ctrl-C ends it (nothing was submitted yet)."""
        await self.pause(seconds)
        self.check_stop()

    async def wait_for(
        self,
        look: Callable[[], Awaitable[S]],
        settle: Callable[[S], Awaitable[R | None]],
        policy: PollPolicy,
        pace: Callable[[S], Look],
    ) -> R:
        """Poll a task: `look` fetches its status, `settle` returns the result once it finished (or raises
        when it failed) and None while it runs; between looks, wait as long as `policy` says from what `pace`
        reads in the status (Novita's estimate, progress; Ctrl-C ends the wait)."""
        began, misses = time.monotonic(), 0
        while True:
            self.check_stop()
            seen = await look()
            done = await settle(seen)
            if done is not None:
                return done
            said = dataclasses.replace(pace(seen), elapsed=time.monotonic() - began)
            interval = policy.next(said, misses, random.random())
            misses = 0 if policy.estimate(said) is not None else misses + 1
            await self.pause(interval)

    def emit(self, event: str, address: str | None, message: str, **data: Any) -> None:
        self.report.emit(event, address, message, **data)

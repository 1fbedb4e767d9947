"""The apply's concurrency slots: at most `--parallelism` requests at once, and who goes first when all are taken.

A plain semaphore serves waiters first come, first served, so with 9,800 uploads queued a training whose own
images are up waited behind every other dataset's uploads to submit. Here each waiter has a priority: a
submit, a download or anything else taken with `async with slots` is urgent (0) and goes next; an upload takes
`slots.at(priority)` with its training's place in the plan (1, 2, ...), so one dataset's images go up together
and its training is submitted the moment they are, while the next datasets' uploads go on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

URGENT = 0


class Slots:
    def __init__(self, size: int) -> None:
        self._free = max(1, size)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # (priority, arrival, handed a slot)
        self._arrivals = itertools.count()

    async def acquire(self, priority: int = URGENT) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), handed))
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():  # a slot was handed over just as this was cancelled
                self.release()
            else:
                handed.cancel()  # skipped when its turn comes
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, handed = heapq.heappop(self._waiting)
            if not handed.done():
                handed.set_result(None)  # the slot passes straight to the most urgent waiter
                return
        self._free += 1

    @asynccontextmanager
    async def at(self, priority: int) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def __aenter__(self) -> None:
        await self.acquire(URGENT)

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

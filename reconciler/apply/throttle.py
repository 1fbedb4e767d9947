"""The images-per-minute throttle: a sliding 60 s window, so a steady run meets no 429."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable


class IpmLimiter:
    """At most `limit` images granted in any `window` seconds (0 = no limit). One grant may exceed the
    limit on its own (a generation of more images than the limit), but then nothing else shares its window."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.events: collections.deque[tuple[float, int]] = collections.deque()
        self.lock = asyncio.Lock()

    async def acquire(self, n: int) -> None:
        if self.limit <= 0:
            return
        async with self.lock:
            while True:
                now = self.clock()
                while self.events and self.events[0][0] <= now - self.window:
                    self.events.popleft()
                used = sum(k for _, k in self.events)
                if used + n <= self.limit or not self.events:
                    self.events.append((now, n))
                    return
                await self.sleep(self.events[0][0] + self.window - now + 0.01)

"""The images-per-minute throttle: a sliding 60 s window, so a steady run meets no 429."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Grant:
    """Images granted at a time; `IpmLimiter.sent` moves the time to when the request really left."""

    at: float
    images: int


class IpmLimiter:
    """At most `limit` images granted in any `window` seconds (0 = no limit). One grant may exceed the
    limit on its own (a generation of more images than the limit), but then nothing else shares its window.

    A grant counts from the moment its request leaves (`sent`), not from when it was granted: the state is
    saved in between, and a slow save followed by a fast one would otherwise put two requests 60 s apart
    by our clock but less than 60 s apart when Novita sees them (a 429)."""

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
        self.events: collections.deque[Grant] = collections.deque()
        self.lock = asyncio.Lock()

    async def acquire(self, n: int) -> Grant | None:
        if self.limit <= 0:
            return None
        async with self.lock:
            while True:
                now = self.clock()
                self.events = collections.deque(g for g in self.events if g.at > now - self.window)
                used = sum(g.images for g in self.events)
                if used + n <= self.limit or not self.events:
                    grant = Grant(now, n)
                    self.events.append(grant)
                    return grant
                await self.sleep(min(g.at for g in self.events) + self.window - now + 0.01)

    def sent(self, grant: Grant | None) -> None:
        """The request of `grant` leaves now."""
        if grant is not None:
            grant.at = max(grant.at, self.clock())

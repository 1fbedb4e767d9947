"""Group commit of the state: every step that changes the world is saved before the next relies on it."""

from __future__ import annotations

import asyncio

from reconciler.state.backend import Store
from reconciler.state.reconnect import StateLost


class Committer:
    """Callers await until a state save that includes their change has reached the disk.

    Changes made while a save is being written are gathered into the next one, so a burst of steps costs
    one write, not one each; the change is prepared on the event loop thread (nobody mutates the state
    meanwhile) and written in a worker thread, by whichever backend holds the state.

    A write that rides out a lost database connection holds every later commit until it ends, so nothing is
    submitted that could not be recorded (a paid create awaits its `submitting` commit first); polling and
    downloading go on meanwhile. Once the state is lost for good (`StateLost`), every commit raises it at once.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.requested = 0
        self.saved = 0
        self.lost: StateLost | None = None

    async def commit(self) -> None:
        self.requested += 1
        mine = self.requested
        async with self.lock:
            if self.lost is not None:
                self.store.prepare()  # journals a task id a create on the wire returned; nothing is written
                raise self.lost
            if self.saved >= mine:
                return
            upto = self.requested
            change = self.store.prepare()
            try:
                await asyncio.to_thread(self.store.write, change)
            except StateLost as exc:
                self.lost = exc
                raise
            self.saved = upto

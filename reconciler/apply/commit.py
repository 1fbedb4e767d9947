"""Group commit of the state: every step that changes the world is saved before the next relies on it."""

from __future__ import annotations

import asyncio

from reconciler.state.backend import Store


class Committer:
    """Callers await until a state save that includes their change has reached the disk.

    Changes made while a save is being written are gathered into the next one, so a burst of steps costs
    one write, not one each; the change is prepared on the event loop thread (nobody mutates the state
    meanwhile) and written in a worker thread, by whichever backend holds the state.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.requested = 0
        self.saved = 0

    async def commit(self) -> None:
        self.requested += 1
        mine = self.requested
        async with self.lock:
            if self.saved >= mine:
                return
            upto = self.requested
            change = self.store.prepare()
            await asyncio.to_thread(self.store.write, change)
            self.saved = upto

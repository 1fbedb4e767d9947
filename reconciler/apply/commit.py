"""Group commit of the state: every step that changes the world is saved before the next relies on it."""

from __future__ import annotations

import asyncio

from reconciler.state import StateStore


class Committer:
    """Callers await until a state save that includes their change has reached the disk.

    Changes made while a save is being written are gathered into the next one, so a burst of steps costs
    one write, not one each; the state is serialised on the event loop thread (nobody mutates it meanwhile)
    and written in a worker thread.
    """

    def __init__(self, store: StateStore) -> None:
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
            text = self.store.render()
            await asyncio.to_thread(self.store.write, text)
            self.saved = upto

"""Group commit of the state: every step that changes the world is saved before the next relies on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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

    def __init__(self, store: Store, notify: Callable[..., None] | None = None) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.requested = 0
        self.saved = 0
        self.lost: StateLost | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notify = notify
        self._journal = getattr(store, "journal", None)  # a journaled store (reconciler.state.journal)
        listen = getattr(store, "listen", None)  # a database store says when it rides out a lost connection
        if notify is not None and listen is not None:
            listen(self._from_writer)

    def _from_writer(self, event: str, **data: object) -> None:
        """Called on the writing thread: hand the event to the event loop's thread."""
        if self._loop is not None and self._notify is not None:
            self._loop.call_soon_threadsafe(lambda: self._notify and self._notify(event, **data))

    async def commit(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._journal is not None:
            self._journal()  # a paid task id reaches the local journal before this commit waits for its turn
        self.requested += 1
        mine = self.requested
        async with self.lock:
            if self.lost is not None:
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

"""Running the applier on an event loop, with Ctrl-C and SIGTERM as its stop."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reconciler.apply import Applier, ApplyResult
    from reconciler.novita import NovitaClient
    from reconciler.present.progress import Reporter


class StopNotices(Protocol):
    """What the person running apply is told when they press Ctrl-C."""

    def notice(self, text: str) -> None:
        """A note for the person running apply."""

    def interrupted(self) -> None:
        """The first Ctrl-C arrived: say that submitting stops and the state is being saved."""


def run_applier(applier: Applier, client: NovitaClient, reporter: Reporter, ui: StopNotices) -> ApplyResult:
    """Run the applier (made with `client` and `reporter`, which this closes) on an event loop. The first Ctrl-C
    (or SIGTERM) stops submitting and waiting at once, lets a create on the wire get its answer, saves the state;
    a second one does not wait for those creates either. The handlers stay until the state is saved, so no Ctrl-C
    can cut the final save."""

    async def go() -> ApplyResult:
        async with client:
            loop = asyncio.get_running_loop()
            signals = 0

            def on_signal() -> None:
                nonlocal signals
                signals += 1
                if signals == 1:
                    ui.interrupted()
                elif signals == 2:
                    ui.notice("Stopping now (submits on the wire are not waited for; they stay recorded); saving…")
                else:
                    ui.notice("Saving the state; it takes a moment.")
                applier.interrupt()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            try:
                return await applier.run()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    try:
        return asyncio.run(go())
    finally:
        reporter.close()

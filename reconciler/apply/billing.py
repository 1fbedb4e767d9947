"""Money during an apply: the balance before and after it, and stopping paid work when Novita refuses a submit for
want of balance (`BILLING_BALANCE_NOT_ENOUGH`).

Paid creates go through `Billing.paying` one at a time, so when the balance runs out exactly one submit is refused:
from then on no paid create is sent (each is refused here, before the wire), while what already runs is still
waited for and collected. A refused create made nothing, so its resource goes back to what the state held before
and the next apply (after a top-up) submits it; nothing is paid twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from reconciler.apply.outcome import Skipped, Unfunded
from reconciler.errors import NovitaError
from reconciler.novita.models import AccountBalance
from reconciler.novita.wire import error_detail
from reconciler.state.model import LEDGER, LEDGER_KEEP, LedgerEntry, SpendRecord, State, now_iso

if TYPE_CHECKING:
    from reconciler.apply.context import Run
    from reconciler.novita import NovitaClient
    from reconciler.state import GenerationEntry, ModelEntry, ResourceEntry

T = TypeVar("T")
NOT_ENOUGH = "BILLING_BALANCE_NOT_ENOUGH"
BALANCE_TIMEOUT = 20.0  # seconds a balance read may take before the apply goes on without it


class NotSent(NovitaError):
    """A paid create this apply no longer sends, once Novita refused one for want of balance."""


def is_unfunded(error: NovitaError) -> bool:
    return error.reason == NOT_ENOUGH


class Billing:
    """One apply's money: the paid-create gate, the balance before and after."""

    def __init__(self, client: NovitaClient) -> None:
        self.client = client
        self.refused: NovitaError | None = None  # the submit Novita refused for want of balance
        self.before: float | None = None
        self.after: float | None = None
        self.started_at = now_iso()
        self._gate = asyncio.Lock()

    async def paying(self, create: Callable[[], Awaitable[T]]) -> T:
        """Send one paid create, unless the balance already ran out in this apply."""
        async with self._gate:
            if self.refused is not None:
                raise NotSent("not submitted: the balance ran out", reason=NOT_ENOUGH)
            try:
                return await create()
            except NovitaError as exc:
                if is_unfunded(exc):
                    self.refused = exc
                raise

    async def balance(self) -> float | None:
        """The available balance in USD; None when it cannot be read (the apply goes on without it)."""
        try:
            async with asyncio.timeout(BALANCE_TIMEOUT):
                found: AccountBalance = await self.client.balance()
        except (NovitaError, TimeoutError):
            return None
        return found.usd("availableBalance")

    async def start(self, run: Run) -> None:
        self.before = await self.balance()
        if self.before is not None:
            run.emit("balance", None, f"balance before: ${self.before:,.4f}", when="before", available=self.before)

    async def finish(self, run: Run, estimate: float | None) -> None:
        """Read the balance after the apply; record this apply's spend in the state's ledger."""
        self.after = await self.balance()
        spent = None if self.before is None or self.after is None else round(self.before - self.after, 6)
        if self.after is not None:
            text = f"balance after: ${self.after:,.4f}" + (f" (spent ${spent:,.4f})" if spent is not None else "")
            run.emit("balance", None, text, when="after", available=self.after, spent=spent)
        result = run.result
        record = SpendRecord(
            started_at=self.started_at,
            finished_at=now_iso(),
            balance_before=self.before,
            balance_after=self.after,
            estimate=estimate,
            trainings=result.trained,
            images=result.images,
            outcome=result.ending,
        )
        ledger(run.state).applies = [*ledger(run.state).applies, record][-LEDGER_KEEP:]
        await run.commit()


def ledger(state: State) -> LedgerEntry:
    found = state.ledger()
    if found is None:
        found = LedgerEntry(name=LEDGER.partition("/")[2], identity="")
        state.put(found)
    return found


async def unfunded(
    run: Run, entry: ModelEntry | GenerationEntry, previous: ResourceEntry | None, error: NovitaError
) -> None:
    """Novita refused this create for want of balance (nothing was made), or it was not sent after such a refusal:
    the state goes back to what it held before (`Run.roll_back`), and the resource is left for the next apply."""
    await run.roll_back(entry, previous)
    if isinstance(error, NotSent):
        raise Skipped(Unfunded())
    run.emit("balance_exhausted", entry.address, f"refused: {error_detail(error)}", reason=NOT_ENOUGH)
    raise Skipped(Unfunded(error_detail(error))) from error

"""A plan's estimate in the workflow: the units, time and cost (`plan.estimate`), the budget, and the account's
balance beside a priced estimate; `refuse_unaffordable` is apply's check before its first paid request."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping

from reconciler.commands.workspace import Endpoint, Settings, make_client
from reconciler.desired.resources import Desired
from reconciler.errors import NovitaError, OverBudget, ReconcilerError
from reconciler.plan.changes import Plan
from reconciler.plan.estimate import Balance, Budget, check_budget, estimate, with_balance
from reconciler.present.estimate import money, overrun_text
from reconciler.state import State

BALANCE_TIMEOUT = 20.0


def estimated(
    settings: Settings,
    plan: Plan,
    desired: Desired,
    state: State,
    endpoint: Endpoint | None,
    ipm: Mapping[str, int] | None = None,
) -> Plan:
    """`plan` with its estimate: the budget checked, and the balance read when the estimate has a cost."""
    pacing = ipm if ipm is not None else settings.config.apply.ipm.model_dump()
    found = estimate(plan, desired, state, settings.config.prices, pacing)
    found = check_budget(found, budget(settings))
    if endpoint is not None and found.cost:
        balance, error = read_balance(endpoint)
        found = with_balance(found, balance, error)
    return dataclasses.replace(plan, estimate=found)


def budget(settings: Settings) -> Budget:
    """--max-* > apply.budget in reconciler.yaml."""
    return Budget.of(settings.config.apply.budget, settings.budget_flags)


def read_balance(endpoint: Endpoint) -> tuple[Balance | None, str | None]:
    """The account's balance, or why it could not be read (a plan goes on without it)."""

    async def go() -> Balance:
        async with make_client(endpoint) as client:
            client.max_retries = 1  # a plan does not wait long for a figure it can do without
            async with asyncio.timeout(BALANCE_TIMEOUT):
                found = await client.balance()
        return Balance(
            found.usd("availableBalance"),
            found.usd("cashBalance"),
            found.usd("creditLimit"),
            found.usd("pendingCharges"),
            found.usd("outstandingInvoices"),
        )

    try:
        return asyncio.run(go()), None
    except NovitaError as exc:
        return None, str(exc)
    except TimeoutError:
        return None, f"no answer in {BALANCE_TIMEOUT:.0f} s"


def refuse_unaffordable(plan: Plan) -> None:
    """Apply's check before anything is paid: over a budget (OverBudget, its own exit status), or an estimate
    the account's balance cannot cover."""
    found = plan.estimate
    if found is None:
        return
    if found.overruns:
        raise OverBudget(
            "over budget: "
            + "; ".join(overrun_text(o) for o in found.overruns)
            + ". Nothing was submitted; raise the budget (apply.budget in reconciler.yaml or --max-*) or apply less "
            "(--target)."
        )
    if found.exceeds_balance and found.balance is not None and found.cost is not None:
        raise ReconcilerError(
            f"the estimate ({money(found.cost)}) exceeds the account's available balance "
            f"({money(found.balance.available)}); nothing was submitted. Top up the account, or apply less (--target)."
        )

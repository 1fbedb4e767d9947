"""Pure: a plan's estimate (paid units, time, cost, balance) and its budget overruns, as text, JSON and markdown."""

from __future__ import annotations

from typing import Any

from reconciler.plan.changes import Plan
from reconciler.plan.estimate import Estimate, Overrun
from reconciler.state.model import SpendRecord
from reconciler.text import duration, plural

NO_PRICES = (
    "Cost: no prices in reconciler.yaml (Novita publishes none for these APIs); add yours in USD to see it, "
    "e.g. `prices: {training: 1.50, image: 0.002}`."
)
UNIT_LINES = 12  # the most paid units listed in the text plan


def money(usd: float) -> str:
    """$3.20, $1.704, $0.002: cents always, smaller digits only when there are some (up to a millionth)."""
    digits = 4 if abs(usd) >= 0.0001 or usd == 0 else 6
    text = f"{usd:,.{digits}f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents:0<2}"


def overrun_text(o: Overrun) -> str:
    if o.what == "cost":
        if o.planned is None:
            return f"the cost is unknown (a unit it pays for has no price) and {o.source} allows {money(o.limit)}"
        return f"it costs {money(o.planned)} and {o.source} allows {money(o.limit)}"
    planned = int(o.planned or 0)
    return f"it pays for {plural(planned, o.what[:-1])} and {o.source} allows {int(o.limit)}"


def budget_lines(plan: Plan) -> list[str]:
    """At the top of a plan over budget: what it exceeds (apply refuses it)."""
    found = plan.estimate
    if found is None or not found.overruns:
        return []
    head = "Over budget: " + "; ".join(overrun_text(o) for o in found.overruns) + "."
    return [head, "apply refuses this plan before its first paid request; raise the budget or plan less.", ""]


def estimate_lines(plan: Plan) -> list[str]:
    """At the end of every plan: what apply pays for, how long it takes, what it costs, the balance."""
    found = plan.estimate
    if found is None or plan.empty:  # "No changes" says it: nothing to pay for
        return []
    if not found.paid:
        free = f" ({plural(found.free, 'free action')})" if found.free else ""
        return ["", f"Estimate: nothing to pay for{free}."]
    what = []
    if found.trainings:
        what.append(plural(found.trainings, "training"))
    if found.images:
        what.append(plural(found.images, "image"))
    lines = ["", f"Estimate: {', '.join(what)} to pay for; about {duration(found.seconds)}{_pace(found)}."]
    units = found.units
    width = max(len(u.unit) for u in units[:UNIT_LINES])
    for unit in units[:UNIT_LINES]:
        cost = f"  {money(unit.cost)}" if unit.cost is not None else ""
        lines.append(f"  {unit.unit:<{width}}  {unit.count:>6}{cost}")
    if len(units) > UNIT_LINES:
        lines.append(f"  … and {len(units) - UNIT_LINES} more kinds of image (`plan --json` lists them all)")
    lines += _cost_lines(found)
    return lines


def _pace(found: Estimate) -> str:
    if not found.trainings:
        return ""
    if found.learnt_from:
        learnt = f"the median of {plural(found.learnt_from, 'training')} this state saw"
        return f" (a training takes {duration(found.training_seconds)}, {learnt})"
    return f" (a training takes {duration(found.training_seconds)} by default, until this state has seen one finish)"


def _cost_lines(found: Estimate) -> list[str]:
    lines = []
    cost = found.cost
    if not found.priced:
        lines.append(NO_PRICES)
    elif cost is None:
        lines.append(f"Cost: unknown: reconciler.yaml has no price for {', '.join(found.missing)}.")
    else:
        lines.append(f"Cost: {money(cost)} (prices from reconciler.yaml).")
    if found.balance is not None:
        lines.append(f"Balance: {money(found.balance.available)} available on the account.")
        if found.exceeds_balance:
            lines.append("The estimate exceeds the balance: apply refuses this plan; top up the account first.")
    elif found.balance_error is not None:
        lines.append(f"Balance: not read ({found.balance_error}).")
    return lines


def estimate_json(plan: Plan) -> dict[str, Any] | None:
    found = plan.estimate
    if found is None:
        return None
    balance = None
    if found.balance is not None:
        b = found.balance
        balance = {
            "available": b.available,
            "cash": b.cash,
            "credit_limit": b.credit_limit,
            "pending_charges": b.pending,
            "outstanding_invoices": b.outstanding,
        }
    return {
        "currency": "USD",
        "trainings": found.trainings,
        "images": found.images,
        "seconds": round(found.seconds, 1),
        "training_seconds": round(found.training_seconds, 1),
        "training_seconds_learnt_from": found.learnt_from,
        "cost": found.cost,
        "priced": found.priced,
        "missing_prices": list(found.missing),
        "free_actions": found.free,
        "units": [{"unit": u.unit, "count": u.count, "cost": u.cost} for u in found.units],
        "resources": [
            {"address": p.address, "unit": p.unit, "count": p.count, "seconds": round(p.seconds, 1), "cost": p.cost}
            for p in found.paid
        ],
        "balance": balance,
        "balance_error": found.balance_error,
        "exceeds_balance": found.exceeds_balance,
        "over_budget": [
            {"limit": o.what, "allowed": o.limit, "planned": o.planned, "source": o.source} for o in found.overruns
        ],
    }


def estimate_markdown(plan: Plan) -> list[str]:
    found = plan.estimate
    if found is None or not found.paid:
        return []
    out = ["", "| Paid unit | Count | Cost |", "|---|---:|---:|"]
    for unit in found.units:
        out.append(f"| {unit.unit} | {unit.count} | {money(unit.cost) if unit.cost is not None else '–'} |")
    out.append("")
    out += [f"_{line.strip()}_" for line in estimate_lines(plan)[1:2]]
    out += [f"_{line}_" for line in _cost_lines(found)]
    return [*out, ""]


def budget_markdown(plan: Plan) -> list[str]:
    lines = budget_lines(plan)
    return [f"> **{lines[0]}** {lines[1]}", ""] if lines else []


def spend_lines(applies: list[SpendRecord]) -> list[str]:
    """`state history`: each apply's spend from the balance, newest first."""
    if not applies:
        return []
    lines = ["", "Applies, newest first (spent: the account's balance before minus after):"]
    for a in reversed(applies):
        spent = money(a.spent) if a.spent is not None else "unknown (balance not read)"
        balance = (
            f" (balance {money(a.balance_before)} → {money(a.balance_after)})"
            if a.balance_before is not None and a.balance_after is not None
            else ""
        )
        estimate = f", estimated {money(a.estimate)}" if a.estimate is not None else ""
        work = f"{plural(a.trainings, 'training')}, {plural(a.images, 'image')}"
        ending = f"\tApply {a.outcome}" if a.outcome else ""
        lines.append(f"{a.started_at}\tspent {spent}{balance}{estimate}\t{work}{ending}")
    return lines

"""Pure: what an apply of a Plan will pay for, how long it will take, what it costs, and whether that fits a budget.

The paid units are the trainings and the images (by type, size and steps) of the changes whose reason is paid
(`reason.paid`: a create or a replace that submits); everything else (wait, look up, adopt, forget, copies to and
from the outputs remote) is free. The duration paces images at the images-per-minute limits and takes a training's time
from the trainings this state has seen finish (their `submitted_at` → `finished_at`), or `DEFAULT_TRAINING_SECONDS`
until then. The cost needs the project's prices (`prices:` in reconciler.yaml); none are ever assumed.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from reconciler.desired.resources import Desired
from reconciler.load.config import BudgetConfig, PricesConfig
from reconciler.state import State

if TYPE_CHECKING:
    from reconciler.plan.changes import Plan, ResourceChange

DEFAULT_TRAINING_SECONDS = 15 * 60.0  # until this state saw a training finish
UNTHROTTLED_IMAGE_SECONDS = 1.0  # an image type with no images-per-minute limit (ipm 0)
Limit = Literal["trainings", "images", "cost"]


@dataclass(frozen=True)
class Paid:
    """One resource's paid work: `count` units of `unit`, taking `seconds`, costing `cost` (None: no price)."""

    address: str
    unit: str  # "subject training", "txt2img 512×768, 20 steps"
    count: int
    seconds: float
    cost: float | None

    @property
    def is_training(self) -> bool:
        return self.address.startswith("LoraModel/")


@dataclass(frozen=True)
class UnitTotal:
    """All the plan's units of one kind (trainings of a type; images of a type, size and steps)."""

    unit: str
    count: int
    cost: float | None


@dataclass(frozen=True)
class Balance:
    """The account's balance, in USD (Novita answers in 1/10,000 USD)."""

    available: float
    cash: float
    credit_limit: float
    pending: float
    outstanding: float


@dataclass(frozen=True)
class Overrun:
    """A budget the plan does not fit: `planned` is more than `limit` (None: the cost is unknown, no prices)."""

    what: Limit
    limit: float
    planned: float | None
    source: str  # "--max-images", "apply.budget.max_images in reconciler.yaml"


@dataclass(frozen=True)
class Estimate:
    paid: tuple[Paid, ...]
    free: int  # free actions: waits, adoptions, forgets, copies
    training_seconds: float  # one training's time, as used here
    learnt_from: int  # finished trainings it was learnt from (0: the default)
    seconds: float  # the whole apply
    priced: bool  # reconciler.yaml has prices
    missing: tuple[str, ...] = ()  # units the plan pays for that have no price
    balance: Balance | None = None
    balance_error: str | None = None  # why the balance could not be read (the plan goes on)
    overruns: tuple[Overrun, ...] = ()

    @property
    def trainings(self) -> int:
        return sum(p.count for p in self.paid if p.is_training)

    @property
    def images(self) -> int:
        return sum(p.count for p in self.paid if not p.is_training)

    @property
    def cost(self) -> float | None:
        """The whole plan's cost in USD; None while a unit it pays for has no price."""
        if self.missing or not self.priced:
            return None
        return round(sum(p.cost or 0.0 for p in self.paid), 6)

    @property
    def units(self) -> tuple[UnitTotal, ...]:
        totals: dict[str, list[Paid]] = {}
        for p in self.paid:
            totals.setdefault(p.unit, []).append(p)
        return tuple(
            UnitTotal(
                unit,
                sum(p.count for p in group),
                None if any(p.cost is None for p in group) else round(sum(p.cost or 0.0 for p in group), 6),
            )
            for unit, group in sorted(totals.items(), key=lambda kv: (not kv[1][0].is_training, kv[0]))
        )

    @property
    def exceeds_balance(self) -> bool:
        cost = self.cost
        return self.balance is not None and cost is not None and cost > self.balance.available


def estimate_of(raw: Mapping[str, Any] | None) -> Estimate | None:
    """An estimate back from its `dataclasses.asdict` (a saved plan); None for a plan saved without one."""
    if not raw:
        return None
    balance = raw.get("balance")
    return Estimate(
        paid=tuple(Paid(**p) for p in raw["paid"]),
        free=int(raw["free"]),
        training_seconds=float(raw["training_seconds"]),
        learnt_from=int(raw["learnt_from"]),
        seconds=float(raw["seconds"]),
        priced=bool(raw["priced"]),
        missing=tuple(raw.get("missing") or ()),
        balance=Balance(**balance) if balance else None,
        balance_error=raw.get("balance_error"),
        overruns=tuple(Overrun(**o) for o in raw.get("overruns") or ()),
    )


_NO_FLAGS = BudgetConfig()


@dataclass(frozen=True)
class Budget:
    """The limits of one apply, each with where it was set (a flag or reconciler.yaml)."""

    max_trainings: int | None = None
    max_images: int | None = None
    max_cost: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: BudgetConfig, flags: BudgetConfig = _NO_FLAGS) -> Budget:
        """Flag (`flags`: the --max-* limits given) > reconciler.yaml (`apply.budget`)."""
        sources: dict[str, str] = {}
        values: dict[str, float | int | None] = {}
        for name in ("max_trainings", "max_images", "max_cost"):
            flag, from_file = getattr(flags, name), getattr(config, name)
            values[name] = flag if flag is not None else from_file
            if flag is not None:
                sources[name] = "--" + name.replace("_", "-")
            elif from_file is not None:
                sources[name] = f"apply.budget.{name} in reconciler.yaml"
        return cls(values["max_trainings"], values["max_images"], values["max_cost"], sources)  # type: ignore[arg-type]


def estimate(
    plan: Plan,
    desired: Desired,
    state: State,
    prices: PricesConfig,
    ipm: Mapping[str, int],
) -> Estimate:
    """What applying `plan` pays for, how long it takes, and (with prices) what it costs."""
    training_seconds, learnt = training_time(state)
    paid: list[Paid] = []
    free = 0
    for change in plan.changes:
        item = _paid(change, desired, prices, ipm, training_seconds) if change.reason.paid else None
        if item is None:
            free += change.kind != "Dataset"
        else:
            paid.append(item)
    free += len(plan.fetches) + len(plan.stores)
    missing = tuple(sorted({p.unit for p in paid if p.cost is None})) if prices.given else ()
    return Estimate(
        paid=tuple(paid),
        free=free,
        training_seconds=training_seconds,
        learnt_from=learnt,
        seconds=_duration(paid, desired, ipm, training_seconds),
        priced=prices.given,
        missing=missing,
    )


def _paid(
    change: ResourceChange,
    desired: Desired,
    prices: PricesConfig,
    ipm: Mapping[str, int],
    training_seconds: float,
) -> Paid | None:
    if change.kind == "LoraModel" and change.name in desired.models:
        task_type = desired.models[change.name].task_type
        price = prices.of_training(task_type)
        return Paid(change.address, f"{task_type} training", 1, training_seconds, price)
    if change.kind == "Generation" and change.name in desired.generations:
        gen = desired.generations[change.name]
        count = change.images or gen.image_num
        unit = f"{gen.task_type} {gen.request.get('width', 512)}×{gen.request.get('height', 512)}, "
        unit += f"{gen.request.get('steps', 20)} steps"
        price = prices.of_image(gen.task_type)
        return Paid(
            change.address,
            unit,
            count,
            count * _image_seconds(ipm, gen.task_type),
            None if price is None else round(price * count, 6),
        )
    return None


def _image_seconds(ipm: Mapping[str, int], task_type: str) -> float:
    per_minute = ipm.get(task_type, 0)
    return 60.0 / per_minute if per_minute else UNTHROTTLED_IMAGE_SECONDS


def _duration(paid: list[Paid], desired: Desired, ipm: Mapping[str, int], training_seconds: float) -> float:
    """Trainings run side by side; images are paced per type (each type has its own limit), and those of a
    generation that uses a training of this plan start once it is done."""
    trained = {p.address.partition("/")[2] for p in paid if p.is_training}
    every: dict[str, float] = {}
    after: dict[str, float] = {}  # images that wait for a training of this plan
    for p in paid:
        if p.is_training:
            continue
        gen = desired.generations[p.address.partition("/")[2]]
        every[gen.task_type] = every.get(gen.task_type, 0.0) + p.seconds
        if any(m in trained for m in gen.lora_models):
            after[gen.task_type] = after.get(gen.task_type, 0.0) + p.seconds
    waiting = training_seconds + max(after.values(), default=0.0) if trained else 0.0
    return max(max(every.values(), default=0.0), waiting)


def training_time(state: State) -> tuple[float, int]:
    """One training's time: the median of the trainings this state saw from submit to finish, and how many
    it was learnt from; the default (and 0) while it saw none."""
    seen = []
    for entry in state.models():
        began, ended = _instant(entry.submitted_at), _instant(entry.finished_at)
        if began is not None and ended is not None and ended > began:
            seen.append(ended - began)
    if not seen:
        return DEFAULT_TRAINING_SECONDS, 0
    return float(statistics.median(seen)), len(seen)


def _instant(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def check_budget(found: Estimate, budget: Budget) -> Estimate:
    """The estimate with the budgets it exceeds. A max_cost the plan cannot price (no price for a unit it pays
    for) counts as exceeded: a limit that cannot be checked does not let money through."""
    overruns: list[Overrun] = []
    src = budget.sources
    if budget.max_trainings is not None and found.trainings > budget.max_trainings:
        overruns.append(Overrun("trainings", budget.max_trainings, found.trainings, src["max_trainings"]))
    if budget.max_images is not None and found.images > budget.max_images:
        overruns.append(Overrun("images", budget.max_images, found.images, src["max_images"]))
    if budget.max_cost is not None and found.paid:
        cost = found.cost
        if cost is None or cost > budget.max_cost + 1e-9:
            overruns.append(Overrun("cost", budget.max_cost, cost, src["max_cost"]))
    return replace(found, overruns=tuple(overruns))


def with_balance(found: Estimate, balance: Balance | None, error: str | None = None) -> Estimate:
    return replace(found, balance=balance, balance_error=error)

"""The estimate (pure): paid units, time, cost, budgets; the settings that feed it; how plans show it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.load.config import BudgetConfig, PricesConfig, load_config
from reconciler.plan.changes import Plan
from reconciler.plan.estimate import (
    DEFAULT_TRAINING_SECONDS,
    Balance,
    Budget,
    Overrun,
    check_budget,
    estimate,
    training_time,
    with_balance,
)
from reconciler.plan.planner import plan
from reconciler.present.estimate import money, spend_lines
from reconciler.present.render import render_json, render_markdown, render_text
from reconciler.state.model import SpendRecord
from tests.planner_fixtures import (
    dataset,
    desired,
    generation,
    generation_entry,
    model,
    model_entry,
    state,
    trained_name,
)

IPM = {"txt2img": 20, "img2img": 10}
PRICED = PricesConfig.model_validate({"training": 1.5, "image": {"txt2img": 0.002}})


def fresh() -> tuple[Plan, object]:
    ds = dataset()
    m = model("alice", ds)
    want = desired(ds, m, generation("portraits"), generation("plain", loras=()))
    return plan(want, state(), None, {}), want


def test_paid_units_time_and_cost_of_a_first_plan() -> None:
    first, want = fresh()
    found = estimate(first, want, state(), PRICED, IPM)  # type: ignore[arg-type]
    assert (found.trainings, found.images, found.free) == (1, 4, 0)
    assert [(u.unit, u.count, u.cost) for u in found.units] == [
        ("subject training", 1, 1.5),
        ("txt2img 512×384, 20 steps", 4, 0.008),
    ]
    # the portraits wait for the training; the plain images are paced meanwhile
    assert found.seconds == DEFAULT_TRAINING_SECONDS + 2 * 3.0
    assert found.cost == 1.508 and found.priced and found.missing == ()


def test_without_prices_units_and_time_but_no_cost() -> None:
    first, want = fresh()
    found = estimate(first, want, state(), PricesConfig(), IPM)  # type: ignore[arg-type]
    assert (found.cost, found.priced, found.images) == (None, False, 4)
    text = render_text(dataclasses.replace(first, estimate=found))
    assert text.endswith(
        "\nEstimate: 1 training, 4 images to pay for; about 15m06s (a training takes 15m00s by default, until this "
        "state has seen one finish).\n"
        "  subject training                1\n"
        "  txt2img 512×384, 20 steps       4\n"
        "Cost: no prices in reconciler.yaml (Novita publishes none for these APIs); add yours in USD to see it, "
        "e.g. `prices: {training: 1.50, image: 0.002}`.\n"
    )


def test_a_unit_without_a_price_leaves_the_cost_unknown() -> None:
    first, want = fresh()
    only_images = PricesConfig.model_validate({"image": 0.002})
    found = estimate(first, want, state(), only_images, IPM)  # type: ignore[arg-type]
    assert found.cost is None and found.missing == ("subject training",)


def test_free_actions_cost_nothing() -> None:
    ds = dataset()
    m = model("alice", ds)
    old = generation("old-portraits")
    held = state(model_entry(m, status="training"), generation_entry(old, {"alice": trained_name(m)}))
    want = desired(ds, m)
    waiting = plan(want, held, None, {})
    assert [(c.kind, c.action) for c in waiting.changes] == [
        ("Dataset", "create"),
        ("LoraModel", "resume"),
        ("Generation", "forget"),
    ]
    found = estimate(waiting, want, held, PRICED, IPM)  # type: ignore[arg-type]
    assert (found.paid, found.cost, found.seconds, found.free) == ((), 0.0, 0.0, 2)
    text = render_text(dataclasses.replace(waiting, estimate=found))
    assert text.endswith("\nEstimate: nothing to pay for (2 free actions).\n")


def test_training_time_is_learnt_from_the_trainings_the_state_saw() -> None:
    m = model("alice")
    assert training_time(state()) == (DEFAULT_TRAINING_SECONDS, 0)
    seen = state(
        model_entry(m, submitted_at="2026-01-01T10:00:00Z", finished_at="2026-01-01T10:08:00Z"),
        model_entry(model("bob"), submitted_at="2026-01-01T10:00:00Z", finished_at="2026-01-01T10:12:00Z"),
        model_entry(model("carol"), submitted_at="2026-01-01T10:00:00Z"),  # not finished: not counted
    )
    assert training_time(seen) == (600.0, 2)


def test_budgets_flag_over_file_and_what_is_over() -> None:
    first, want = fresh()
    found = estimate(first, want, state(), PRICED, IPM)  # type: ignore[arg-type]
    budget = Budget.of(BudgetConfig(max_trainings=1, max_images=10, max_cost=1.0), BudgetConfig(max_images=3))
    over = check_budget(found, budget).overruns
    assert over == (
        Overrun("images", 3, 4, "--max-images"),
        Overrun("cost", 1.0, 1.508, "apply.budget.max_cost in reconciler.yaml"),
    )
    assert check_budget(found, Budget.of(BudgetConfig(max_images=4, max_trainings=1))).overruns == ()
    # a cost limit that cannot be checked (no price) does not let money through
    unpriced = estimate(first, want, state(), PricesConfig(), IPM)  # type: ignore[arg-type]
    assert check_budget(unpriced, Budget.of(BudgetConfig(max_cost=100.0))).overruns == (
        Overrun("cost", 100.0, None, "apply.budget.max_cost in reconciler.yaml"),
    )


def test_over_budget_is_said_first_in_text_json_and_markdown() -> None:
    first, want = fresh()
    found = estimate(first, want, state(), PRICED, IPM)  # type: ignore[arg-type]
    over = dataclasses.replace(
        first, estimate=check_budget(found, Budget.of(BudgetConfig(), BudgetConfig(max_trainings=0)))
    )
    assert render_text(over).startswith(
        "Over budget: it pays for 1 training and --max-trainings allows 0.\n"
        "apply refuses this plan before its first paid request; raise the budget or plan less.\n\n"
    )
    assert json.loads(render_json(over))["estimate"]["over_budget"] == [
        {"limit": "trainings", "allowed": 0, "planned": 1, "source": "--max-trainings"}
    ]
    assert render_markdown(over).startswith(
        "### reconciler plan\n\n> **Over budget: it pays for 1 training and --max-trainings allows 0.** apply refuses"
    )


def test_the_balance_beside_a_priced_estimate_and_when_it_is_not_enough() -> None:
    first, want = fresh()
    found = estimate(first, want, state(), PRICED, IPM)  # type: ignore[arg-type]
    low = with_balance(found, Balance(1.0, 1.0, 0.0, 0.0, 0.0))
    assert low.exceeds_balance
    text = render_text(dataclasses.replace(first, estimate=low))
    assert text.endswith(
        "Cost: $1.508 (prices from reconciler.yaml).\nBalance: $1.00 available on the account.\n"
        "The estimate exceeds the balance: apply refuses this plan; top up the account first.\n"
    )
    failed = with_balance(found, None, "Novita GET /openapi/v1/billing/balance/detail: 500")
    assert render_text(dataclasses.replace(first, estimate=failed)).endswith(
        "Balance: not read (Novita GET /openapi/v1/billing/balance/detail: 500).\n"
    )


def test_money() -> None:
    assert [money(x) for x in (0, 1.5, 1.704, 0.002, 1234.5)] == ["$0.00", "$1.50", "$1.704", "$0.002", "$1,234.50"]


def test_spend_lines_newest_first() -> None:
    applies = [
        SpendRecord(started_at="2026-01-01T10:00:00Z", balance_before=5.0, balance_after=3.5, images=2, trainings=1,
                    outcome="complete"),
        SpendRecord(started_at="2026-01-02T10:00:00Z", outcome="failed"),
    ]  # fmt: skip
    assert spend_lines(applies)[2:] == [
        "2026-01-02T10:00:00Z\tspent unknown (balance not read)\t0 trainings, 0 images\tApply failed",
        "2026-01-01T10:00:00Z\tspent $1.50 (balance $5.00 → $3.50)\t1 training, 2 images\tApply complete",
    ]


def test_prices_and_budget_in_reconciler_yaml(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        "apply:\n  budget: {max_trainings: 2, max_images: 500, max_cost: 20}\n"
        "prices:\n  training: {subject: 1.5, style: 2}\n  image: 0.002\n"
    )
    config = load_config(tmp_path).config
    assert (config.apply.budget.max_trainings, config.apply.budget.max_images, config.apply.budget.max_cost) == (
        2,
        500,
        20.0,
    )
    assert (config.prices.of_training("style"), config.prices.of_image("img2img")) == (2.0, 0.002)


def test_prices_and_budget_errors_located(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        "apply:\n  budget: {max_images: -1, max_cost: abc}\nprices:\n  training: {subject: 1.5, styel: 2}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == (
        "3 errors in reconciler.yaml:\n"
        "reconciler.yaml:2:24: apply.budget.max_images: must be ≥ 0; got -1\n"
        'reconciler.yaml:2:38: apply.budget.max_cost: expected a number; got "abc"\n'
        "reconciler.yaml:4:28: prices.training.styel: unknown field; did you mean `style`?"
    )

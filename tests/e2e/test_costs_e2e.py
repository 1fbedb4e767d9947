"""Estimates, budgets and the account's balance through the real CLI against the simulator as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Project, make_project, start_sim, submissions

pytestmark = pytest.mark.e2e

PRICES = "prices:\n  training: {subject: 1.50, style: 1.50}\n  image: 0.002\n"


def grid(n: int, m: int, name: str = "sweep") -> str:
    """A Generation swept n × m (seed × steps): n·m members of one image each, no LoRA."""
    seeds = ", ".join(str(i + 1) for i in range(n))
    steps = ", ".join(str(10 + i) for i in range(m))
    return f"""apiVersion: reconciler/v1
kind: Generation
metadata: {{name: {name}}}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a lighthouse at dusk
  width: 256
  height: 256
  output: ../outputs/{name}
  matrix:
    seed: [{seeds}]
    steps: [{steps}]
"""


def grid_project(tmp_path: Path, n: int, m: int, *sim_args: str) -> Project:
    sim = start_sim(tmp_path / "sim", *sim_args)
    manifests = tmp_path / "src"
    manifests.mkdir()
    (manifests / "sweep.yaml").write_text(grid(n, m))
    return make_project(tmp_path, sim, manifests)


@pytest.fixture
def ten_by_ten(tmp_path: Path) -> Any:
    project = grid_project(tmp_path, 10, 10)
    yield project
    project.sim.stop()


PAID_ENDPOINTS = ("training-create", "txt2img", "img2img")


def paid_requests(project: Project) -> list[dict[str, Any]]:
    return [r for r in project.sim.requests() if r["endpoint"] in PAID_ENDPOINTS]


def test_a_10x10_plan_shows_100_images_the_time_and_with_prices_the_cost(ten_by_ten: Project) -> None:
    project = ten_by_ten
    plan = project.run("plan")
    assert plan.returncode == 0, plan.stderr
    tail = plan.stdout.split("\n\nEstimate: ", 1)[1]
    assert tail.splitlines()[0] == "100 images to pay for; about 5m00s."
    assert "txt2img 256×256, 10 steps      10" in tail
    assert "Cost: no prices in reconciler.yaml" in tail and "prices: {training: 1.50, image: 0.002}" in tail

    (project.root / "reconciler.yaml").write_text(PRICES)
    plan = project.run("plan")
    assert plan.returncode == 0, plan.stderr
    assert "\nCost: $0.20 (prices from reconciler.yaml).\nBalance: $1,000.00 available on the account.\n" in plan.stdout
    data = json.loads(project.run("plan", "--json").stdout)["estimate"]
    assert (data["images"], data["trainings"], data["seconds"], data["cost"]) == (100, 0, 300.0, 0.2)
    assert data["balance"]["available"] == 1000.0 and len(data["resources"]) == 100
    assert sum(u["count"] for u in data["units"]) == 100
    markdown = project.run("plan", "--format", "markdown").stdout
    assert "_Estimate: 100 images to pay for; about 5m00s._" in markdown
    assert "| txt2img 256×256, 10 steps | 10 | $0.02 |" in markdown
    assert "_Cost: $0.20 (prices from reconciler.yaml)._" in markdown


def test_over_budget_plan_exits_3_and_apply_sends_no_paid_request(ten_by_ten: Project) -> None:
    project = ten_by_ten
    plan = project.run("plan", "--max-images", "50")
    assert plan.returncode == 3, plan.stderr
    assert plan.stdout.startswith(
        "Over budget: it pays for 100 images and --max-images allows 50.\n"
        "apply refuses this plan before its first paid request; raise the budget or plan less.\n"
    )
    data = json.loads(project.run("plan", "--json", "--max-images", "50").stdout)["estimate"]
    assert data["over_budget"] == [{"limit": "images", "allowed": 50, "planned": 100, "source": "--max-images"}]
    markdown = project.run("plan", "--format", "markdown", "--max-images", "50")
    assert markdown.returncode == 3 and "> **Over budget: it pays for 100 images" in markdown.stdout

    (project.root / "reconciler.yaml").write_text("apply:\n  budget: {max_images: 50}\n")
    applied = project.apply()
    assert applied.returncode == 3, applied.stdout + applied.stderr
    assert "Error: over budget: it pays for 100 images and apply.budget.max_images in reconciler.yaml allows 50." in (
        applied.stderr
    )
    assert paid_requests(project) == []
    assert not (project.root / "outputs").exists()


def test_the_balance_runs_out_mid_apply_then_a_top_up_converges_paying_only_what_is_missing(tmp_path: Path) -> None:
    # 12 images at $0.002 each against $0.01: five are paid, the sixth is refused, the rest are never sent
    project = grid_project(tmp_path, 3, 4, "--balance", "0.01", "--ipm-txt2img", "0")
    try:
        (project.root / "reconciler.yaml").write_text("apply:\n  ipm: {txt2img: 0}\n")
        first = project.apply("--json")
        assert first.returncode == 1, first.stdout + first.stderr
        log = project.sim.requests()
        refused = [r for r in log if r["endpoint"] == "txt2img" and r["status"] == 400]
        assert len(refused) == 1
        assert sum(submissions(log)["generations"].values()) == 5
        assert "Stopped: Novita refused a submit for want of balance (BILLING_BALANCE_NOT_ENOUGH)" in first.stderr
        events = [json.loads(line) for line in first.stdout.splitlines()]
        balances = [e for e in events if e["event"] == "balance"]
        assert [(e["when"], e["available"]) for e in balances] == [("before", 0.01), ("after", 0.0)]
        state = project.state()
        done = [e for e in state["resources"].values() if e["kind"] == "Generation" and e["status"] == "succeeded"]
        assert len(done) == 5
        assert [
            e for e in state["resources"].values() if e["kind"] == "Generation" and e["status"] != "succeeded"
        ] == []

        httpx.post(f"{project.sim.base_url}/_sim/balance", json={"top_up": 1000}, timeout=10).raise_for_status()
        second = project.apply()
        assert second.returncode == 0, second.stdout + second.stderr
        log = project.sim.requests()
        paid = [r for r in log if r["endpoint"] == "txt2img" and r["status"] == 200]
        assert len(paid) == 12
        assert all(
            e["status"] == "succeeded" for e in project.state()["resources"].values() if e["kind"] == "Generation"
        )
        assert len([r for r in log if r["endpoint"] == "txt2img" and r["status"] == 400]) == 1

        history = project.run("state", "history")
        assert history.returncode == 0, history.stderr
        spends = [line for line in history.stdout.splitlines() if "\tspent " in line]
        assert len(spends) == 2
        assert "spent $0.014 (balance $0.10 → $0.086)" in spends[0] and "7 images" in spends[0]
        assert "spent $0.01 (balance $0.01 → $0.00)" in spends[1] and "Apply failed" in spends[1]
    finally:
        project.sim.stop()

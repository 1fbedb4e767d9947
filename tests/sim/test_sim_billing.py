"""The simulator's balance: GET /openapi/v1/billing/balance/detail, its own price table charged per training and
per image, BILLING_BALANCE_NOT_ENOUGH when a submit would exceed it, top-ups, and the balance kept across restarts."""

from __future__ import annotations

from pathlib import Path

from sim_helpers import Sim, generation_body, make_sim

from reconciler.sim.config import DEFAULT_BALANCE, SimConfig

BALANCE = "/openapi/v1/billing/balance/detail"


def available(sim: Sim) -> int:
    response = sim.get(BALANCE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"availableBalance", "cashBalance", "creditLimit", "pendingCharges", "outstandingInvoices"}
    assert all(isinstance(v, str) for v in body.values())  # int64 as strings, 1/10,000 USD
    return int(body["availableBalance"])


def test_a_fresh_account_has_a_balance_and_each_submit_is_charged(sim: Sim) -> None:
    assert available(sim) == DEFAULT_BALANCE
    sim.train()
    assert available(sim) == DEFAULT_BALANCE - 15_000  # $1.50 a training
    sim.generate(image_num=4)
    assert available(sim) == DEFAULT_BALANCE - 15_000 - 4 * 20  # $0.002 an image
    assert sim.get(BALANCE, headers={}).json()["reason"] == "MISSING_API_KEY"


def test_a_submit_the_balance_cannot_cover_is_refused_and_makes_nothing() -> None:
    sim = make_sim(SimConfig(random_seed=1, balance=50))
    sim.generate(image_num=2)  # 40 of 50
    refused = sim.post("/v3/async/txt2img", generation_body(image_num=1))
    assert refused.status_code == 400
    assert refused.json()["reason"] == "BILLING_BALANCE_NOT_ENOUGH"
    assert available(sim) == 10 and len(sim.account.generations) == 1
    ids = [sim.upload() for _ in range(2)]
    from sim_helpers import training_body

    training = sim.post("/v3/training/subject", training_body(ids))
    assert (training.status_code, training.json()["reason"]) == (400, "BILLING_BALANCE_NOT_ENOUGH")
    assert sim.account.trainings == {}
    topped = sim.client.post("/_sim/balance", json={"top_up": 20_000})
    assert topped.json() == {"balance": 20_010}
    sim.train()
    assert available(sim) == 5_010
    assert sim.client.post("/_sim/balance", json={"top_up": "lots"}).status_code == 400
    sim.client.close()


def test_the_balance_survives_a_restart_unless_set_again(tmp_path: Path) -> None:
    first = make_sim(SimConfig(random_seed=1, balance=1_000), tmp_path)
    first.generate(image_num=5)
    first.account.save()
    first.client.close()
    again = make_sim(SimConfig(random_seed=1), tmp_path)
    assert available(again) == 900 and again.account.spent == 100
    again.client.close()
    reset = make_sim(SimConfig(random_seed=1, balance=7), tmp_path)
    assert available(reset) == 7
    reset.client.close()

"""Ghost suite: a Novita look-alike that creates the task and then answers 500, 500 CREATE_TASK_FAILED, 503 or
drops the connection (30 % of training and generation creates), whose listing lags a create, on top of ordinary
5xx and dropped connections. Over several rounds of retraining every model, with no person involved:

- every training exists exactly once in the account (a create without an answer is looked up by its name before
  anything is sent again);
- a generation is paid twice only where a submit got no answer and was resubmitted, and every such resubmit is
  counted in the apply's summary, its JSON events and the state;
- each round converges with nobody involved: within two applies, or three in the rare round where one
  generation's four submits of an apply all go unanswered twice in a row (each apply tries a generation at most
  four times, since every try may be paid; at ~35 % unanswered submits that is ~1.5 % of generation-applies).
  The fault suite holds the two-apply promise at its 20 %.

The simulator does not limit images per minute, and neither do the applies (--ipm-* 0: a throttle's minute is
no part of what this suite checks). Their look-ups after an unanswered create come at a quarter of their usual
pauses (harness.WAIT_SCALE) and the listing lags by a quarter of 1.5 s: found, as with the usual pauses, by the
third look.

Which requests fault is the simulator's draw from the run's seed (tests/seed.py), printed in the figure line:
rerun one with RECONCILER_TEST_SEED=<seed>.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.state import parse_state
from tests.e2e.harness import API_KEY, QUICK_WAITS, WAIT_SCALE, Project, start_sim
from tests.reliability.projectgen import MODELS, generation_prompt, make_generated_project, model_doc
from tests.reliability.runner import created
from tests.seed import run_seed

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]  # minutes on a loaded machine

LIST_LAG = 1.5 * WAIT_SCALE  # seconds: found by the third look-up, after the pauses' first two
GHOSTS = ["training-create:ghost=0.3", "txt2img:ghost=0.3", "img2img:ghost=0.3", f"list-lag={LIST_LAG}"]
BACKGROUND = ["5xx=0.05", "drop=0.02", "latency=0.005"]
GENERATIONS = 10
ROUNDS = (500, 600, 700)  # max_train_steps of every model: each round retrains all and regenerates all


def _listed_names(base_url: str) -> Counter[str]:
    names: Counter[str] = Counter()
    cursor = ""
    while True:
        params: dict[str, Any] = {"pagination.limit": 100, **({"pagination.cursor": cursor} if cursor else {})}
        page = httpx.get(f"{base_url}/v3/training", params=params, headers={"Authorization": f"Bearer {API_KEY}"})
        page.raise_for_status()
        names.update(t["task_name"] for t in page.json()["tasks"])
        cursor = page.json()["pagination"]["next_cursor"]
        if not cursor:
            return names


def _events(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_ghost_suite(tmp_path: Path, figure: Any) -> None:
    specs = [*GHOSTS, *BACKGROUND]
    sim = start_sim(tmp_path / "sim", "--ipm-txt2img", "0", "--ipm-img2img", "0", "--random-seed", str(run_seed()),
                    *(a for f in specs for a in ("--fault", f)))  # fmt: skip
    try:
        project: Project = make_generated_project(tmp_path, sim, GENERATIONS)
        project.env.update(QUICK_WAITS)
        applies: list[int] = []
        resubmit_events = paid_twice = 0
        applies_per_round: list[int] = []
        for steps in ROUNDS:
            for k in range(MODELS):
                (project.root / "manifests" / f"model{k}.yaml").write_text(model_doc(k, steps=steps))
            mark = len(sim.requests())
            results = []
            for _ in range(3):  # converges unattended: two applies, three in a rare round (see the docstring)
                results.append(project.apply("--json", "--ipm-txt2img", "0", "--ipm-img2img", "0", timeout=300))
                if results[-1].returncode == 0:
                    break
            codes = [r.returncode for r in results]
            applies += codes
            assert codes[-1] == 0, f"round {steps}: no convergence in three applies: {codes}\n{results[-1].stderr}"
            applies_per_round.append(len(codes))
            assert all("Traceback" not in r.stderr for r in results)
            events = [e for r in results for e in _events(r)]
            resubmits = Counter(e["address"] for e in events if e["event"] == "resubmitted")
            counted = sum(e["resubmitted"] for e in events if e["event"] == "apply_complete")
            assert sum(resubmits.values()) == counted  # every resubmit is in the summary's count
            resubmit_events += counted
            round_log = sim.requests()[mark:]
            made = created(round_log)
            assert len(made["trainings"]) == MODELS and set(made["trainings"].values()) == {1}, made["trainings"]
            for g in range(GENERATIONS):
                extra = made["generations"][generation_prompt(g)] - 1
                assert 0 <= extra <= resubmits[f"Generation/gen{g}"], (steps, g, made["generations"], resubmits)
                paid_twice += extra
            state = parse_state((project.root / "state/state.json").read_bytes(), "state.json")
            assert {e.status for e in state.resources.values()} == {"succeeded"}
            for entry in state.generations():  # the state records each resubmit of the current definition
                assert entry.resubmits == resubmits[entry.address], (entry.address, entry.resubmits)
            plan = project.run("plan", "--detailed-exitcode")
            assert plan.returncode == 0, plan.stdout + plan.stderr
        log = sim.requests()
        sim.faults(reset=True)  # the listing catches up
        listed = _listed_names(sim.base_url)
        assert len(listed) == MODELS * len(ROUNDS) and set(listed.values()) == {1}, listed
        kinds = Counter(r["fault"] for r in log if r.get("fault"))
        ghosts = {k: v for k, v in sorted(kinds.items()) if k.startswith("ghost-")}
        lookups = sum(1 for r in log if r["endpoint"] == "training-list")
        figure(
            f"ghost suite: {len(ROUNDS)} rounds x {MODELS} retrains + {GENERATIONS} generations, {len(applies)} "
            f"applies (exit {','.join(map(str, applies))}), {sum(ghosts.values())} ghost creates {ghosts}, listing "
            f"lag {LIST_LAG}s, {sum(kinds.values()) - sum(ghosts.values())} other faults; trainings created per name: "
            f"{sorted(set(listed.values()))} ({len(listed)} names, {lookups} listing requests); "
            f"{resubmit_events} generation submits resubmitted after no answer, {paid_twice} generation(s) paid "
            f"twice, all counted; applies per round to converge: {applies_per_round} (seed {run_seed()})"
        )
    finally:
        sim.stop()

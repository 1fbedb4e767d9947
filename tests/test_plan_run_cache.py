"""Planner tables with a run cache: a held identity is never paid for again. The no-op row first.

Each row: (desired, state, account, what the run cache holds) -> (address, action, where its images come from).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.desired.resources import DesiredGeneration, DesiredModel
from reconciler.observe.facts import Account, OutputFacts
from reconciler.observe.holdings import training_holdings
from reconciler.observe.runcache import Holding, RunCache, run_cache, task_hash
from reconciler.plan.planner import plan
from reconciler.state import ForgottenEntry, HistoryRecord, State
from tests.planner_fixtures import (
    INTACT,
    dataset,
    dataset_entry,
    desired,
    generation,
    generation_entry,
    model,
    model_entry,
    remote,
    remote_task,
    state,
    trained_name,
)

DS = dataset()
M = model(ds=DS)
G = generation(loras=())
ID = G.identity({})
assert ID is not None
UPLOADED = tuple(i.sha256 for i in DS.images)


def gen(
    name: str = "portraits", *, prompt: str = "a photo", seed: int = 123, output: str | None = None
) -> DesiredGeneration:
    g = dataclasses.replace(
        generation(name, loras=(), prompt=prompt), request={**G.request, "prompt": prompt, "seed": seed}
    )
    if output is not None:
        g = dataclasses.replace(g, output_dir=Path("/p") / output, output_display=output)
    return g


def ident(g: DesiredGeneration) -> str:
    identity = g.identity({})
    assert identity is not None
    return identity


def held(g: DesiredGeneration, source: str = "state", owner: str | None = None, where: str | None = None) -> Holding:
    files = tuple((f"{where or g.output_display}/{g.stem}-{i}.png", f"{i:064x}") for i in range(g.image_num))
    return Holding(ident(g), source, owner or g.address, files, where or g.output_display, "task-1", "123")  # type: ignore[arg-type]


def done(g: DesiredGeneration, **kw: Any) -> Any:
    return generation_entry(g, {}, **kw)


@dataclass
class Row:
    id: str
    desired: list[Any]
    state: State
    holdings: list[Holding]
    expected: list[tuple[str, str, str | None]]  # (address, action, source "kind:owner" or None)
    outputs: dict[str, OutputFacts] = field(default_factory=dict)
    account: Account | None = None
    replace: tuple[str, ...] = ()


RENAMED = gen("close-ups")
MOVED = gen(output="out/elsewhere")
EDITED = gen(prompt="a photo, golden hour")
RANDOM = gen(seed=-1)
TWIN = gen("twin")
RANDOM_TWIN = gen("twin", seed=-1)

ROWS = [
    Row(
        "no-op: converged, the same identity also held elsewhere changes nothing",
        [G],
        state(done(G)),
        [held(G), held(G, "history", where="out/portraits/history/abc")],
        [],
        outputs={G.address: INTACT},
    ),
    Row(
        "output moved in the manifest only: its own images move",
        [MOVED],
        state(done(G)),
        [held(G)],
        [(G.address, "move", "state:Generation/portraits")],
        outputs={G.address: INTACT},
    ),
    Row(
        "a renamed generation moves the record it was renamed from, which is not forgotten",
        [RENAMED],
        state(done(G)),
        [held(G)],
        [(RENAMED.address, "move", "state:Generation/portraits")],
    ),
    Row(
        "a reverted prompt is copied from its own history",
        [G],
        state(done(EDITED, history=[HistoryRecord(identity=ID, folder="out/portraits/history/x")])),
        [held(G, "history", where="out/portraits/history/x")],
        [(G.address, "copy", "history:Generation/portraits")],
    ),
    Row(
        "a request another resource holds is copied from it",
        [G, TWIN],
        state(done(G)),
        [held(G)],
        [(TWIN.address, "copy", "state:Generation/portraits")],
        outputs={G.address: INTACT},
    ),
    Row(
        "two resources with the same request in one plan: paid once, the other copies it",
        [G, TWIN],
        state(),
        [],
        [(G.address, "create", None), (TWIN.address, "copy", "plan:Generation/portraits")],
    ),
    Row(
        "two random draws of the same request are two draws",
        [RANDOM, RANDOM_TWIN],
        state(),
        [],
        [(RANDOM.address, "create", None), (RANDOM_TWIN.address, "create", None)],
    ),
    Row(
        "a random draw is not copied from another resource's draw",
        [RANDOM, RANDOM_TWIN],
        state(done(RANDOM)),
        [held(RANDOM)],
        [(RANDOM_TWIN.address, "create", None)],
        outputs={RANDOM.address: INTACT},
    ),
    Row(
        "a renamed random draw keeps its own draw",
        [gen("close-ups", seed=-1)],
        state(done(RANDOM)),
        [held(RANDOM)],
        [("Generation/close-ups", "move", "state:Generation/portraits")],
    ),
    Row(
        "a forgotten generation's images are copied back when it is added again",
        [G],
        state(ForgottenEntry(name=G.address, identity=ID)),
        [held(G, "forgotten")],
        [(G.address, "copy", "forgotten:Generation/portraits")],
    ),
    Row(
        "held only in the outputs remote: copied from it",
        [RENAMED],
        state(),
        [held(G, "remote", where="the outputs remote")],
        [(RENAMED.address, "copy", "remote:Generation/portraits")],
    ),
    Row(
        "what the planner cannot prove stays paid: a rename with a changed request",
        [gen("close-ups", prompt="a photo, golden hour")],
        state(done(G)),
        [held(G)],
        [("Generation/close-ups", "create", None), (G.address, "forget", None)],
    ),
    Row(
        "--replace pays again even for a held identity",
        [G],
        state(done(G)),
        [held(G, "history", where="out/portraits/history/x")],
        [(G.address, "replace", None)],
        outputs={G.address: INTACT},
        replace=(G.address,),
    ),
    Row(
        "one retiring record moves once: its second twin copies it from the first",
        [RENAMED, TWIN],
        state(done(G)),
        [held(G)],
        [(RENAMED.address, "move", "state:Generation/portraits"), (TWIN.address, "copy", "plan:Generation/close-ups")],
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_planner_with_a_run_cache(row: Row) -> None:
    result = plan(
        desired(*row.desired),
        row.state,
        row.account,
        row.outputs,
        replace=row.replace,
        run_cache=run_cache(row.holdings),
    )
    got = [
        (c.address, c.action, f"{c.source.source}:{c.source.owner}" if c.source is not None else None)
        for c in result.changes
    ]
    assert got == row.expected
    free = [c for c in result.changes if c.action in ("move", "copy")]
    assert all(c.images == 0 and not c.reason.paid for c in free)


def _renamed(m: DesiredModel) -> DesiredModel:
    return dataclasses.replace(m, name="alice-v2")


def test_a_renamed_lora_model_adopts_its_own_training_from_the_state() -> None:
    g = generation()
    renamed, used = (
        _renamed(M),
        dataclasses.replace(g, request={**g.request, "loras": [{"model": "alice-v2", "strength": 0.7}]}),
    )
    names = {"alice": trained_name(M)}
    before = state(dataset_entry(DS), model_entry(M), generation_entry(g, names), uploaded=UPLOADED)
    account = remote(remote_task(M))
    cache = run_cache((), training_holdings(before, account))
    result = plan(desired(DS, renamed, used), before, account, {g.address: INTACT}, run_cache=cache)
    got = [(c.address, c.action, c.task_name, c.model_name) for c in result.changes]
    assert got == [
        ("LoraModel/alice-v2", "adopt", M.task_name, trained_name(M)),
        ("LoraModel/alice", "forget", None, None),
    ]
    assert (result.trainings, result.generations, result.uploads) == (0, 0, 0)


def test_a_renamed_lora_model_adopts_its_training_from_the_account_after_a_state_loss() -> None:
    renamed = _renamed(M)
    account = remote(remote_task(M), foreign=3)
    cache = run_cache((), training_holdings(State(), account))
    result = plan(desired(DS, renamed), State(), account, {}, run_cache=cache)
    model_change = result.get("LoraModel/alice-v2")
    assert model_change is not None
    assert (model_change.action, model_change.task_name, model_change.task_id) == ("adopt", M.task_name, "t-1")
    assert result.trainings == 0


def test_a_training_is_looked_up_by_its_identity_hash_and_failed_ones_are_not_holdings() -> None:
    account = remote(remote_task(M, status="FAILED", task_id="t-0"), remote_task(M, task_id="t-1"))
    cache = run_cache((), training_holdings(State(), account))
    assert task_hash(M.task_name) == M.identity[:8]
    assert task_hash("no-hash-here") is None
    assert [t.task_id for t in cache.training(M.identity)] == ["t-1"]
    assert cache.find(model(steps=900).identity) == ()


def test_find_lists_every_holding_best_first() -> None:
    history = held(G, "history", where="out/portraits/history/x")
    cache = run_cache([held(G, "remote", where="the outputs remote"), history, held(G)])
    assert [h.source for h in cache.find(ID)] == ["state", "history", "remote"]
    assert RunCache().find(ID) == ()


def test_a_saved_plan_keeps_where_each_move_and_copy_comes_from(tmp_path: Path) -> None:
    from reconciler.plan.planfile import load_plan, save_plan

    result = plan(desired(RENAMED, TWIN), state(done(G)), None, {}, run_cache=run_cache([held(G)]))
    save_plan(result, tmp_path / "plan.json")
    again = load_plan(tmp_path / "plan.json").plan
    assert again.changes == result.changes
    assert [c.source for c in again.changes if c.source is not None] == [
        held(G),
        Holding(ID, "plan", "Generation/close-ups", (), ""),
    ]

"""Planner and renderer: matrix members grouped, history announced, prune counted and listed. Pure, no I/O."""

from __future__ import annotations

import dataclasses

from reconciler.observe.facts import OrphanFacts, OutputFacts, PruneFile
from reconciler.plan import reasons as r
from reconciler.plan.planner import plan
from reconciler.present.render import plan_json, render_text
from reconciler.state import FileRecord, HistoryRecord
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
NAMES = {"alice": trained_name(M)}
UPLOADED = tuple(i.sha256 for i in DS.images)


def member(seed: int, strength: float) -> object:
    g = generation(f"grid[seed={seed},strength={strength:g}]")
    request = {**g.request, "seed": seed, "loras": [{"model": "alice", "strength": strength}]}
    return dataclasses.replace(g, request=request, matrix="grid", axes=(("seed", seed), ("strength", strength)))


MEMBERS = [member(s, v) for s in (1, 2) for v in (0.6, 1.0)]
HISTORY = (
    PruneFile("out/portraits/history/aaaaaaaaaaaa/portraits-0.png", "1" * 64, 2048, "Generation/portraits", "history"),
    PruneFile("out/old/old-0.png", "2" * 64, 1000, "Generation/old", "forgotten"),
)


def done_state(*gens: object) -> object:
    return state(
        dataset_entry(DS),
        model_entry(M),
        *(generation_entry(g, NAMES) for g in gens),  # type: ignore[arg-type]
        uploaded=UPLOADED,
    )


def test_no_op_a_converged_matrix_plans_nothing() -> None:
    result = plan(
        desired(DS, M, *MEMBERS),
        done_state(*MEMBERS),  # type: ignore[arg-type]
        remote(remote_task(M)),
        {g.address: INTACT for g in MEMBERS},  # type: ignore[attr-defined]
    )
    assert result.empty
    assert (
        render_text(result)
        == "Refreshing: 1 page of trainings (1 task, 1 ours).\n\nNo changes. Novita matches the manifests.\n"
    )


def test_a_new_seed_adds_only_its_members_under_one_heading() -> None:
    more = [*MEMBERS, member(3, 0.6), member(3, 1.0)]
    result = plan(
        desired(DS, M, *more),
        done_state(*MEMBERS),  # type: ignore[arg-type]
        remote(remote_task(M)),
        {g.address: INTACT for g in MEMBERS},  # type: ignore[attr-defined]
    )
    assert [(c.address, c.action) for c in result.changes] == [
        ("Generation/grid[seed=3,strength=0.6]", "create"),
        ("Generation/grid[seed=3,strength=1]", "create"),
    ]
    assert render_text(result) == (
        "Refreshing: 1 page of trainings (1 task, 1 ours).\n"
        "\n"
        "  Generation/grid                           matrix, 2 members: 2 to create\n"
        "    + Generation/grid[seed=3,strength=0.6]  2 images, txt2img 512×384\n"
        "    + Generation/grid[seed=3,strength=1]    2 images, txt2img 512×384\n"
        "\n"
        "Plan: 0 images to upload, 0 models to train, 2 generations to run (4 images), 0 to forget.\n"
    )
    assert plan_json(result)["resource_changes"][0]["matrix"] == "Generation/grid"


def test_target_a_whole_matrix_or_one_member_in_any_axis_order() -> None:
    args = (desired(DS, M, *MEMBERS), state(dataset_entry(DS), model_entry(M), uploaded=UPLOADED), None)
    whole = plan(*args, targets=["Generation/grid"])
    assert [c.address for c in whole.changes] == [g.address for g in MEMBERS]  # type: ignore[attr-defined]
    one = plan(*args, targets=["Generation/grid[strength=1,seed=2]"])
    assert [c.address for c in one.changes] == ["Generation/grid[seed=2,strength=1]"]


def test_target_a_matrix_takes_in_its_members_removed_from_the_manifests() -> None:
    """A seed dropped from the matrix: its member is only in the state; targeting the matrix forgets it too."""
    args = (
        desired(DS, M, *MEMBERS),
        done_state(*MEMBERS, member(3, 0.6)),
        remote(remote_task(M)),
        {g.address: INTACT for g in MEMBERS},  # type: ignore[attr-defined]
    )
    untargeted = plan(*args)  # type: ignore[arg-type]
    targeted = plan(*args, targets=["Generation/grid"])  # type: ignore[arg-type]
    forget = [("Generation/grid[seed=3,strength=0.6]", "forget")]
    assert [(c.address, c.action) for c in untargeted.changes] == forget
    assert [(c.address, c.action) for c in targeted.changes] == forget
    other = plan(*args, targets=["LoraModel/alice"])  # type: ignore[arg-type]
    assert not other.changes  # a target elsewhere leaves the matrix alone


def test_a_replaced_generation_says_its_images_move_to_history() -> None:
    g = generation()
    changed = generation(prompt="a new photo")
    result = plan(
        desired(DS, M, changed),
        done_state(g),
        remote(remote_task(M)),
        {g.address: INTACT},  # type: ignore[arg-type]
    )
    [change] = result.changes
    assert (change.action, change.notes) == ("replace", (r.CurrentImagesToHistory(2),))
    text = render_text(result)
    assert "  -/+ Generation/portraits" in text
    assert "      ~ prompt: a photo → a new photo\n      (its 2 current images move to history)\n" in text
    gone = plan(
        desired(DS, M, changed),
        done_state(g),  # type: ignore[arg-type]
        remote(remote_task(M)),
        {g.address: OutputFacts(files_intact=False, missing=2)},
    )
    assert gone.changes[0].notes == ()  # nothing left on disk to move


def test_history_is_counted_without_prune_and_listed_with_it() -> None:
    g = generation()
    args = (desired(DS, M, g), done_state(g), remote(remote_task(M)), {g.address: INTACT})
    orphans = OrphanFacts(HISTORY, ("out/portraits/history/aaaaaaaaaaaa/portraits-1.png",))
    counted = plan(*args, orphans=orphans)  # type: ignore[arg-type]
    assert counted.empty  # history alone is no change
    assert render_text(counted) == (
        "Refreshing: 1 page of trainings (1 task, 1 ours).\n\n"
        "No changes. Novita matches the manifests.\n\n"
        "Outputs: 2 files (3.0 KB) in history or left by forgotten generations; `apply --prune` removes them "
        "(`plan --prune` lists them).\n"
    )
    listed = plan(*args, orphans=orphans, prune=True)  # type: ignore[arg-type]
    assert not listed.empty and listed.changes == ()
    assert render_text(listed) == (
        "Refreshing: 1 page of trainings (1 task, 1 ours).\n\n"
        "Plan: 0 images to upload, 0 models to train, 0 generations to run, 0 to forget, 2 files to prune.\n\n"
        "Prune: apply --prune removes 2 files (3.0 KB):\n"
        "  - out/portraits/history/aaaaaaaaaaaa/portraits-0.png  (history of Generation/portraits)\n"
        "  - out/old/old-0.png  (forgotten of Generation/old)\n\n"
        "Kept: 1 file changed since written:\n"
        "  out/portraits/history/aaaaaaaaaaaa/portraits-1.png\n"
    )
    assert plan_json(listed)["prune"]["files"][1] == {
        "path": "out/old/old-0.png",
        "sha256": "2" * 64,
        "size": 1000,
        "owner": "Generation/old",
        "what": "forgotten",
    }
    targeted = plan(*args, orphans=orphans, prune=True, targets=["Generation/portraits"])  # type: ignore[arg-type]
    assert [f.path for f in targeted.prunable] == [HISTORY[0].path]


def test_forget_says_what_prune_will_do() -> None:
    g = generation()
    args = (desired(DS, M), done_state(g), remote(remote_task(M)), {})
    kept = plan(*args)  # type: ignore[arg-type]
    assert kept.changes[0].reason == r.ForgetGeneration(images=2, prune=False)
    pruned = plan(*args, prune=True)  # type: ignore[arg-type]
    assert pruned.changes[0].reason == r.ForgetGeneration(images=2, prune=True)


def test_history_survives_in_the_state_document() -> None:
    g = generation()
    entry = generation_entry(g, NAMES)
    entry.history.append(
        HistoryRecord(
            identity="f" * 64,
            folder="out/portraits/history/ffffffffffff",
            files=[FileRecord(path="out/portraits/history/ffffffffffff/portraits-1.png", sha256="3" * 64)],
            attributes={"prompt": "before"},
        )
    )
    s = state(entry)
    again = type(s).model_validate_json(s.model_dump_json())
    assert again.generation("portraits").history[0].attributes == {"prompt": "before"}  # type: ignore[union-attr]

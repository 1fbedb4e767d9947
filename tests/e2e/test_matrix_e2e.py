"""Matrices, history and prune through the real CLI against the simulator over a real socket."""

from __future__ import annotations

import json
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Project, held, submissions, wait_for

pytestmark = pytest.mark.e2e

GRID = """
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: alice-grid}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a photo of ohwx woman, studio lighting
  loras: [{model: alice-v1, strength: 0.8}]
  width: 256
  height: 256
  output: ../outputs/alice-grid
  matrix:
    seed: [1, 2]
    loras[0].strength: [0.6, 1.0]
"""

SWEPT_MODEL = """
---
apiVersion: reconciler/v1
kind: LoraModel
metadata: {name: bob}
spec:
  dataset: alice-photos
  base_model: v1-5-pruned-emaonly
  expert_setting: {instance_prompt: a close photo of ohwx woman, class_prompt: person}
  matrix:
    expert_setting.max_train_steps: [400, 800]
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: bob-look}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: bob looks at the camera
  loras: [{model: bob, strength: 0.7}]
  width: 256
  height: 256
  seed: 5
  output: ../outputs/bob-look
"""


def add(project: Project, text: str) -> None:
    path = project.root / "manifests/generations.yaml"
    path.write_text(path.read_text() + text)


def generation_calls(log: list[dict[str, Any]]) -> Counter[tuple[str, object]]:
    """Generation tasks the simulator created, counted by (prompt, seed)."""
    out: Counter[tuple[str, object]] = Counter()
    for r in log:
        created = r.get("status") == 200 or r.get("fault") == "drop-after"
        if r.get("endpoint") in ("txt2img", "img2img") and created:
            summary = r.get("body_summary") or {}
            out[(str(summary.get("prompt")), summary.get("seed"))] += 1
    return out


def outputs(project: Project, folder: str) -> list[str]:
    base = project.root / folder
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def test_a_matrix_plans_as_one_group_applies_member_by_member_and_a_new_seed_adds_only_its_members(
    project: Project,
) -> None:
    add(project, GRID)
    plan = project.run("plan")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("  Generation/alice-grid "))
    assert lines[head].split() == ["Generation/alice-grid", "matrix,", "4", "members:", "4", "to", "create"]
    members = [line.split()[:2] for line in lines[head + 1 : head + 5]]
    assert members == [
        ["+", "Generation/alice-grid[seed=1,strength=0.6]"],
        ["+", "Generation/alice-grid[seed=1,strength=1]"],
        ["+", "Generation/alice-grid[seed=2,strength=0.6]"],
        ["+", "Generation/alice-grid[seed=2,strength=1]"],
    ]
    assert all(line.startswith("    + ") for line in lines[head + 1 : head + 5])
    assert "Plan: 13 images to upload, 1 model to train, 6 generations to run (7 images), 0 to forget." in plan.stdout

    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs(project, "outputs/alice-grid") == [
        f"seed={seed},strength={strength}/{name}"
        for seed in (1, 2)
        for strength in ("0.6", "1")
        for name in ("alice-grid-1.png", "alice-grid.reconciler.json")
    ]
    state = project.state()["resources"]["Generation/alice-grid[seed=2,strength=0.6]"]
    assert (state["matrix"], state["axes"]) == ("alice-grid", [["seed", 2], ["strength", 0.6]])
    assert project.run("plan", "--detailed-exitcode").returncode == 0

    mark = len(project.sim.requests())
    project.edit("manifests/generations.yaml", "seed: [1, 2]", "seed: [1, 2, 3]")
    plan = project.run("plan")
    assert "Plan: 0 images to upload, 0 models to train, 2 generations to run (2 images), 0 to forget." in plan.stdout
    assert "+ Generation/alice-grid[seed=3,strength=0.6]" in plan.stdout
    assert "+ Generation/alice-grid[seed=3,strength=1]" in plan.stdout
    one = project.run("plan", "--target", "Generation/alice-grid[strength=1,seed=3]")  # any order of the axes
    assert "Plan: 0 images to upload, 0 models to train, 1 generation to run (1 image), 0 to forget." in one.stdout
    assert project.apply().returncode == 0
    assert generation_calls(project.sim.requests()[mark:]) == {("a photo of ohwx woman, studio lighting", 3): 2}
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_a_swept_model_trains_once_per_member_and_everything_is_adopted_after_state_loss(project: Project) -> None:
    add(project, SWEPT_MODEL)
    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    state = project.state()["resources"]
    names = {addr: entry["task_name"] for addr, entry in state.items() if addr.startswith("LoraModel/bob[")}
    assert sorted(names) == ["LoraModel/bob[max_train_steps=400]", "LoraModel/bob[max_train_steps=800]"]
    assert len(set(names.values())) == 2 and all(n.startswith("bob-") and len(n) == 12 for n in names.values())
    trained = submissions(project.sim.requests())["trainings"]
    assert all(trained[name] == 1 for name in names.values())
    look = sorted(addr for addr in state if addr.startswith("Generation/bob-look["))
    assert look == [
        "Generation/bob-look[bob.max_train_steps=400]",
        "Generation/bob-look[bob.max_train_steps=800]",
    ]
    models = {state[a]["attributes"]["loras"][0]["model_name"] for a in look}
    assert models == {state[m]["model_name"] for m in names}  # each member generates with its own variant

    mark = len(project.sim.requests())
    shutil.rmtree(project.root / "state")
    plan = project.run("plan")
    for addr in [*names, *look]:
        assert f"<= {addr}" in plan.stdout, plan.stdout
    assert project.apply().returncode == 0
    assert submissions(project.sim.requests()[mark:]) == {"trainings": {}, "generations": {}, "uploads": {}}
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_an_edit_moves_the_paid_images_to_history_and_prune_removes_exactly_what_the_plan_listed(
    project: Project,
) -> None:
    assert project.apply().returncode == 0
    folder = project.root / "outputs/alice-portraits"
    before = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    project.edit("manifests/generations.yaml", "cinematic lighting", "golden hour light")
    plan = project.run("plan")
    assert "(its 2 current images move to history)" in plan.stdout
    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    entry = project.state()["resources"]["Generation/alice-portraits"]
    [record] = entry["history"]
    kept = project.root / record["folder"]
    assert kept.parent == folder / "history" and kept.name == record["identity"][:12]
    assert {p.name: p.read_bytes() for p in kept.glob("*.png")} == before  # the paid images, untouched
    assert (kept / "alice-portraits.reconciler.json").is_file()
    assert record["attributes"]["prompt"] == "a photo of ohwx woman, cinematic lighting"
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(before)  # stable paths, new images
    assert all((folder / name).read_bytes() != data for name, data in before.items())

    # a history file changed by hand is never removed
    changed = kept / "alice-portraits-2.png"
    changed.write_bytes(changed.read_bytes() + b"edited")
    plain = project.run("plan", "--detailed-exitcode")
    assert plain.returncode == 0, plain.stdout  # history alone is no change
    assert "Outputs: 2 files" in plain.stdout and "`apply --prune` removes them" in plain.stdout
    listed = project.run("plan", "--prune").stdout
    paths = [line.split()[1] for line in listed.splitlines() if line.startswith("  - outputs/")]
    assert paths == [
        f"{record['folder']}/alice-portraits-1.png",
        f"{record['folder']}/alice-portraits.reconciler.json",
    ]
    assert f"Kept: 1 file changed since written:\n  {record['folder']}/alice-portraits-2.png" in listed
    pruned = project.apply("--prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "pruned 2 files" in pruned.stdout
    assert sorted(p.name for p in kept.iterdir()) == ["alice-portraits-2.png"]
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(before)


def test_a_forgotten_generation_can_be_pruned_in_a_later_apply(project: Project) -> None:
    assert project.apply().returncode == 0
    manifest = project.root / "manifests/generations.yaml"
    manifest.write_text(manifest.read_text().split("---")[1])  # keep alice-restyle only
    forgot = project.apply()
    assert forgot.returncode == 0
    assert len(list((project.root / "outputs/alice-portraits").glob("*.png"))) == 2
    forgotten = project.state()["resources"]["Forgotten/Generation/alice-portraits"]
    assert len(forgotten["files"]) == 3  # 2 images and the sidecar, on record until pruned
    assert "Forgotten/Generation/alice-portraits\tsucceeded\t3 files on disk until `apply --prune`" in (
        project.run("state", "list").stdout
    )
    plan = project.run("plan")
    assert "Outputs: 3 files" in plan.stdout
    preview = project.run("plan", "--prune")
    assert "Prune: apply --prune removes 3 files" in preview.stdout
    assert "(forgotten of Generation/alice-portraits)" in preview.stdout
    assert project.apply("--prune").returncode == 0
    assert not (project.root / "outputs/alice-portraits").exists()  # emptied, so removed too
    assert "Forgotten/Generation/alice-portraits" not in project.state()["resources"]
    assert (project.root / "outputs/alice-restyle/alice-restyle-1.jpg").is_file()


def test_history_goes_back_on_record_when_a_lost_state_is_adopted(project: Project) -> None:
    assert project.apply().returncode == 0
    project.edit("manifests/generations.yaml", "cinematic lighting", "golden hour light")
    assert project.apply().returncode == 0
    [before] = project.state()["resources"]["Generation/alice-portraits"]["history"]
    mark = len(project.sim.requests())
    shutil.rmtree(project.root / "state")
    assert "<= Generation/alice-portraits" in project.run("plan").stdout
    assert project.apply().returncode == 0
    assert submissions(project.sim.requests()[mark:]) == {"trainings": {}, "generations": {}, "uploads": {}}
    [after] = project.state()["resources"]["Generation/alice-portraits"]["history"]
    assert (after["identity"], after["folder"], after["files"]) == (
        before["identity"],
        before["folder"],
        before["files"],
    )
    assert after["attributes"]["prompt"] == "a photo of ohwx woman, cinematic lighting"
    assert "Prune: apply --prune removes 3 files" in project.run("plan", "--prune").stdout


def test_validate_counts_matrix_members(project: Project) -> None:
    add(project, GRID + SWEPT_MODEL)
    result = project.run("validate")
    assert (result.returncode, result.stdout) == (0, "12 resources valid (3 matrices: 8 members)\n")


def test_a_matrix_apply_killed_midway_resumes_member_by_member_without_paying_twice(project: Project) -> None:
    add(project, GRID)
    proc = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    state_file = project.root / "state/state.json"

    def some_members_done() -> bool:
        try:
            entries = json.loads(state_file.read_text()).get("resources", {})
        except (OSError, ValueError):
            return False
        return any(a.startswith("Generation/alice-grid[") and e.get("files") for a, e in entries.items())

    assert wait_for(some_members_done, timeout=90), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    cut = held(project)
    resumed = project.apply(*[arg for addr in cut for arg in ("--replace", addr)])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    calls = generation_calls(project.sim.requests())
    for seed in (1, 2):
        assert 2 <= calls[("a photo of ohwx woman, studio lighting", seed)] <= 2 + len(cut), (calls, cut)
    assert project.run("plan", "--detailed-exitcode").returncode == 0
    # a member's image downloaded before the kill but not yet recorded is kept in its history, never overwritten
    current = [p for p in (project.root / "outputs/alice-grid").rglob("*.png") if "history" not in p.parts]
    assert len(current) == 4


def test_a_swept_model_apply_killed_after_a_training_submit_trains_each_member_once(project: Project) -> None:
    add(project, SWEPT_MODEL)
    proc = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    state_file = project.root / "state/state.json"

    def submitted() -> bool:
        try:
            entries = json.loads(state_file.read_text()).get("resources", {})
        except (OSError, ValueError):
            return False
        return any(a.startswith("LoraModel/bob[") and e.get("status") == "training" for a, e in entries.items())

    assert wait_for(submitted, timeout=90), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    cut = held(project)
    resumed = project.apply(*[arg for addr in cut for arg in ("--replace", addr)])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    names = {e["task_name"] for a, e in project.state()["resources"].items() if a.startswith("LoraModel/bob[")}
    trained = submissions(project.sim.requests())["trainings"]
    assert len(names) == 2 and all(trained[name] == 1 for name in names), (names, trained)
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_matrix_errors_are_located_in_the_manifest(project: Project) -> None:
    add(
        project,
        GRID.replace("seed: [1, 2]", "seed: [1, 1, -5]").replace(
            "loras[0].strength: [0.6, 1.0]", "loras[0].strenght: [0.6]\n    output: [a]"
        ),
    )
    result = project.run("plan")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: 4 errors in the manifests:"
    where = "manifests/generations.yaml"
    assert [line.split(": ", 1)[1] for line in lines[1:]] == [
        "Generation/alice-grid: spec.matrix.seed[1]: duplicate value 1 (the same as [0]); give it once",
        "Generation/alice-grid: spec.matrix.seed[2]: must be ≥ -1; got -5",
        "Generation/alice-grid: spec.matrix.loras[0].strenght: unknown field; did you mean `loras[0].strength`?",
        "Generation/alice-grid: spec.matrix.output: `output` cannot be swept; a Generation matrix sweeps prompt, "
        "negative_prompt, model_name, width, height, image_num, steps, seed, guidance_scale, sampler_name, "
        "clip_skip, sd_vae, strength, loras[N].strength",
    ]
    assert all(line.startswith(where + ":") for line in lines[1:])
    assert not (project.root / "state").exists()


def test_gallery_without_state_says_what_to_do(project: Project) -> None:
    result = project.run("gallery")
    assert result.returncode == 1
    assert result.stderr == (
        "Error: no state at state/state.json: nothing was applied yet "
        "(after `apply --sim`, add --sim: its state is state/sim.json)\n"
    )
    assert not (project.root / "gallery").exists()


def test_apply_refreshes_the_gallery_unless_told_not_to(project: Project, tmp_path: Path) -> None:
    done = project.apply("--no-gallery")
    assert done.returncode == 0
    assert not (project.root / "gallery").exists()
    project.edit("manifests/generations.yaml", "cinematic lighting", "golden hour light")
    again = project.apply()
    assert again.returncode == 0
    assert "Gallery: gallery/index.html (3 images" in again.stdout
    assert (project.root / "gallery/index.html").is_file()
    (project.root / "reconciler.yaml").write_text("outputs:\n  gallery: false\n")
    shutil.rmtree(project.root / "gallery")
    project.edit("manifests/generations.yaml", "golden hour light", "blue hour light")
    assert project.apply().returncode == 0
    assert not (project.root / "gallery").exists()

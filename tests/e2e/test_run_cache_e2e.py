"""Pay once per request: each refactor of a converged project costs nothing, through the real CLI and simulator.

Every test converges the example project, refactors it the way people do, and checks what reached the simulator
(0 trainings, 0 generations, 0 uploads), that the declared output folder holds the very bytes that were paid for,
and that the next plan is empty.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Project, submissions

pytestmark = pytest.mark.e2e

PORTRAITS = "outputs/alice-portraits"
GENS = "manifests/generations.yaml"
PROMPT = "prompt: a photo of ohwx woman, cinematic lighting"


def converge(project: Project) -> int:
    """Apply the example project; the simulator's request count after it."""
    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    return len(project.sim.requests())


def images(project: Project, folder: str) -> list[str]:
    """The sha256 of the images in a folder (not its history), in file-name order."""
    base = project.root / folder
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(base.glob("*.png")) + sorted(base.glob("*.jpg"))]


def everything(project: Project) -> set[str]:
    """Every image hash anywhere under outputs/ (current or history)."""
    return {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (project.root / "outputs").rglob("*")
        if p.is_file() and p.suffix in (".png", ".jpg")
    }


def paid(project: Project, mark: int) -> tuple[int, int, int]:
    counts = submissions(project.sim.requests()[mark:])
    return (sum(counts["trainings"].values()), sum(counts["generations"].values()), sum(counts["uploads"].values()))


def apply_free(project: Project, mark: int, *expected: str) -> str:
    """Plan (showing `expected`), apply, and check nothing was paid and the next plan is empty."""
    plan = project.run("plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for text in expected:
        assert text in plan.stdout, plan.stdout
    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert paid(project, mark) == (0, 0, 0), done.stdout
    again = project.run("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    return plan.stdout


def test_output_moved_in_the_manifest_only_moves_the_images(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, "output: ../outputs/alice-portraits", "output: ../outputs/portraits")
    out = apply_free(
        project,
        mark,
        "-> Generation/alice-portraits",
        "output folder changed: its 2 images move from outputs/alice-portraits to outputs/portraits (free)",
        "Plan: 0 images to upload, 0 models to train, 0 generations to run, 0 to forget; free: 1 to move.",
    )
    assert "-/+" not in out
    assert images(project, "outputs/portraits") == paid_for
    assert images(project, PORTRAITS) == []
    assert not (project.root / PORTRAITS / "alice-portraits.reconciler.json").exists()


def test_folder_and_manifest_moved_together_records_the_images_where_they_are(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, PORTRAITS)
    shutil.move(project.root / PORTRAITS, project.root / "outputs/portraits")
    project.edit(GENS, "output: ../outputs/alice-portraits", "output: ../outputs/portraits")
    apply_free(project, mark, "<= Generation/alice-portraits", "already in outputs/portraits (sidecar matches)")
    assert images(project, "outputs/portraits") == paid_for
    assert not (project.root / "outputs/portraits/history").exists()  # nothing was overwritten


def test_a_renamed_generation_moves_its_own_images(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, "name: alice-portraits", "name: alice-close-ups")
    out = apply_free(
        project,
        mark,
        "-> Generation/alice-close-ups",
        "moved from Generation/alice-portraits: its 2 images stay in outputs/alice-portraits, named after "
        "alice-close-ups (free)",
    )
    assert "- Generation/alice-portraits" not in out  # the move takes its record over: nothing to forget
    assert images(project, PORTRAITS) == paid_for
    names = sorted(p.name for p in (project.root / PORTRAITS).iterdir())
    assert names == ["alice-close-ups-1.png", "alice-close-ups-2.png", "alice-close-ups.reconciler.json"]
    assert "Generation/alice-portraits" not in project.state()["resources"]


def test_a_reverted_prompt_is_copied_back_from_history(project: Project) -> None:
    converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, PROMPT, "prompt: a photo of ohwx woman, golden hour")
    mark = converge(project)
    edited = images(project, PORTRAITS)
    project.edit(GENS, "prompt: a photo of ohwx woman, golden hour", PROMPT)
    apply_free(project, mark, ">> Generation/alice-portraits", "made before by Generation/alice-portraits")
    assert images(project, PORTRAITS) == paid_for
    assert set(edited) <= everything(project)  # the edit's images went to history


def test_a_revert_after_two_edits_pays_nothing(project: Project) -> None:
    converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, PROMPT, "prompt: a photo of ohwx woman, golden hour")
    converge(project)
    project.edit(GENS, "golden hour", "blue hour")
    mark = converge(project)
    seen = everything(project)
    project.edit(GENS, "prompt: a photo of ohwx woman, blue hour", PROMPT)
    apply_free(project, mark, ">> Generation/alice-portraits")
    assert images(project, PORTRAITS) == paid_for
    assert seen <= everything(project)


def test_a_renamed_lora_model_adopts_its_own_training_and_nothing_downstream_changes(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, PORTRAITS)
    task = project.state()["resources"]["LoraModel/alice-v1"]["task_name"]
    project.edit("manifests/alice.yaml", "name: alice-v1", "name: alice-v2")
    project.edit(GENS, "{model: alice-v1, strength: 0.7}", "{model: alice-v2, strength: 0.7}")
    project.edit(GENS, "{model: alice-v1, strength: 0.6}", "{model: alice-v2, strength: 0.6}")
    out = apply_free(project, mark, "<= LoraModel/alice-v2", f"same definition trained as {task}")
    assert "Generation/" not in out.split("Plan:")[0].replace("Generation/alice", "")  # no generation line paid
    assert "generations to run" in out and "0 generations to run" in out
    assert project.state()["resources"]["LoraModel/alice-v2"]["task_name"] == task
    assert images(project, PORTRAITS) == paid_for


def test_a_one_value_matrix_axis_moves_the_generation_to_its_member(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, "  guidance_scale: 7.5\n", "  matrix: {guidance_scale: [7.5]}\n")
    apply_free(
        project, mark, "-> Generation/alice-portraits[guidance_scale=7.5]", "moved from Generation/alice-portraits"
    )
    assert images(project, f"{PORTRAITS}/guidance_scale=7.5") == paid_for


def test_a_document_moved_to_another_file_is_free(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, "outputs/alice-restyle")
    text = (project.root / GENS).read_text()
    head, sep, restyle = text.partition(
        "---\napiVersion: reconciler/v1\nkind: Generation\nmetadata:\n  name: alice-restyle"
    )
    assert sep
    (project.root / GENS).write_text(head)
    (project.root / "manifests/restyle.yaml").write_text(sep.removeprefix("---\n") + restyle)
    apply_free(project, mark)
    assert images(project, "outputs/alice-restyle") == paid_for


def test_a_rename_and_a_move_at_once_pays_nothing(project: Project) -> None:
    mark = converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, "name: alice-portraits", "name: alice-close-ups")
    project.edit(GENS, "output: ../outputs/alice-portraits", "output: ../outputs/close-ups")
    apply_free(project, mark, "-> Generation/alice-close-ups")
    assert images(project, "outputs/close-ups") == paid_for
    assert images(project, PORTRAITS) == []


TWINS = """
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: NAME}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a quiet harbour at dawn
  width: 256
  height: 256
  SEED
  output: ../outputs/NAME
"""


def add_twins(project: Project, seed: str) -> None:
    path = project.root / GENS
    twins = "".join(TWINS.replace("NAME", n).replace("SEED", seed) for n in ("harbour-a", "harbour-b"))
    path.write_text(path.read_text() + twins)


def test_two_generations_with_the_same_request_in_one_apply_are_paid_once(project: Project) -> None:
    mark = converge(project)
    add_twins(project, "seed: 11")
    plan = project.run("plan")
    assert "+ Generation/harbour-a" in plan.stdout
    assert ">> Generation/harbour-b" in plan.stdout
    assert (
        "Plan: 0 images to upload, 0 models to train, 1 generation to run (1 image), 0 to forget; free: 1 to copy."
        in (plan.stdout)
    )
    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert paid(project, mark) == (0, 1, 0)
    assert images(project, "outputs/harbour-a") == images(project, "outputs/harbour-b") != []
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_random_draws_are_never_copied_between_resources_but_a_renamed_one_keeps_its_own(project: Project) -> None:
    mark = converge(project)
    add_twins(project, "seed: -1")
    plan = project.run("plan")
    assert "+ Generation/harbour-a" in plan.stdout and "+ Generation/harbour-b" in plan.stdout
    assert converge(project) and paid(project, mark) == (0, 2, 0)  # two draws
    mark = len(project.sim.requests())
    drawn = images(project, "outputs/harbour-b")
    project.edit(GENS, "metadata: {name: harbour-b}", "metadata: {name: harbour-c}")
    apply_free(project, mark, "-> Generation/harbour-c", "moved from Generation/harbour-b")
    assert images(project, "outputs/harbour-b") == drawn


def test_every_write_into_an_output_folder_moves_a_differing_file_aside(project: Project) -> None:
    """A stray file where a download lands is kept in history, on record."""
    project.run("plan")
    stray = project.root / PORTRAITS / "alice-portraits-1.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not an image reconciler wrote")
    converge(project)
    digest = hashlib.sha256(b"not an image reconciler wrote").hexdigest()
    kept = project.root / PORTRAITS / "history" / digest[:12] / "alice-portraits-1.png"
    assert kept.read_bytes() == b"not an image reconciler wrote"
    history = project.state()["resources"]["Generation/alice-portraits"]["history"]
    assert any(f["sha256"] == digest for record in history for f in record["files"])


def test_a_move_or_copy_moves_a_differing_file_in_its_way_to_history(project: Project) -> None:
    mark = converge(project)
    project.edit(GENS, "output: ../outputs/alice-portraits", "output: ../outputs/portraits")
    target = project.root / "outputs/portraits/alice-portraits-1.png"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"someone else's file")
    apply_free(project, mark, "-> Generation/alice-portraits")
    digest = hashlib.sha256(b"someone else's file").hexdigest()
    assert (project.root / "outputs/portraits/history" / digest[:12] / "alice-portraits-1.png").is_file()


def test_a_fresh_clone_reverting_a_prompt_copies_from_the_outputs_remote(project: Project, tmp_path: Path) -> None:
    """Another clone shares the state and the outputs remote but has none of the images: a revert pays nothing."""
    (tmp_path / "remote").mkdir()
    project.env["RECONCILER_OUTPUTS_REMOTE"] = (tmp_path / "remote").as_uri()
    converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, PROMPT, "prompt: a photo of ohwx woman, golden hour")
    mark = converge(project)
    clone = Project(tmp_path / "clone", project.sim, dict(project.env))
    shutil.copytree(project.root / "manifests", clone.root / "manifests")
    shutil.copytree(project.root / "state", clone.root / "state")
    clone.edit(GENS, "prompt: a photo of ohwx woman, golden hour", PROMPT)
    apply_free(clone, mark, ">> Generation/alice-portraits", "from the outputs remote (free)")
    assert images(clone, PORTRAITS) == paid_for


def test_pull_moves_a_differing_local_file_to_history_before_it_writes(project: Project, tmp_path: Path) -> None:
    (tmp_path / "remote").mkdir()
    project.env["RECONCILER_OUTPUTS_REMOTE"] = (tmp_path / "remote").as_uri()
    converge(project)
    paid_for = images(project, PORTRAITS)
    mine = project.root / PORTRAITS / "alice-portraits-1.png"
    mine.write_bytes(b"touched up by hand")
    pulled = project.run("pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert images(project, PORTRAITS) == paid_for
    digest = hashlib.sha256(b"touched up by hand").hexdigest()
    assert (project.root / PORTRAITS / "history" / digest[:12] / "alice-portraits-1.png").read_bytes() == (
        b"touched up by hand"
    )


SWEEP = """
---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: sweep}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a lighthouse in fog
  width: 256
  height: 256
  output: ../outputs/sweep
  matrix:
    seed: [1, 2]
    steps: [20, 30]
"""


def test_reordered_axes_and_a_new_one_value_axis_pay_nothing(project: Project) -> None:
    path = project.root / GENS
    path.write_text(path.read_text() + SWEEP)
    converge(project)
    before = everything(project)
    mark = len(project.sim.requests())
    path.write_text(
        path.read_text().replace(
            "    seed: [1, 2]\n    steps: [20, 30]\n",
            "    steps: [20, 30]\n    guidance_scale: [7.5]\n    seed: [1, 2]\n",
        )
    )
    apply_free(project, mark, "free: 4 to move")
    current = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (project.root / "outputs/sweep").rglob("*.png")
        if "history" not in p.parts
    }
    assert len(current) == 4 and current <= before


def test_a_fresh_clone_on_postgresql_reverting_a_prompt_pays_nothing(
    project: Project, tmp_path: Path, pg_url: str
) -> None:
    """The team's setup: the state in PostgreSQL, images in an outputs remote. A clone with the manifests only (no
    state folder, no images) reverts a prompt another runner changed: it is copied from the remote, not paid."""
    (tmp_path / "remote").mkdir()
    project.env["RECONCILER_OUTPUTS_REMOTE"] = (tmp_path / "remote").as_uri()
    project.env["RECONCILER_STATE_URL"] = pg_url
    converge(project)
    paid_for = images(project, PORTRAITS)
    project.edit(GENS, PROMPT, "prompt: a photo of ohwx woman, golden hour")
    mark = converge(project)
    clone = Project(tmp_path / "clone", project.sim, dict(project.env))
    shutil.copytree(project.root / "manifests", clone.root / "manifests")
    clone.edit(GENS, "prompt: a photo of ohwx woman, golden hour", PROMPT)
    apply_free(clone, mark, ">> Generation/alice-portraits", "from the outputs remote (free)")
    assert images(clone, PORTRAITS) == paid_for
    assert not (clone.root / "state/state.json").exists()  # the clone's state is the team's, in PostgreSQL

"""The real CLI in a subprocess against the simulator in another process, over a real socket."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.e2e.harness import (
    API_KEY,
    QUICK_WAITS,
    Project,
    SimProcess,
    make_project,
    start_sim,
    submissions,
    wait_for,
)

pytestmark = pytest.mark.e2e


def _new_requests(sim: SimProcess, before: int) -> dict[str, object]:
    return submissions(sim.requests()[before:])  # type: ignore[return-value]


def test_first_apply_converges_and_second_plan_is_empty(project: Project) -> None:
    before = project.run("plan", "--detailed-exitcode")
    assert before.returncode == 2, before.stderr
    assert "Plan: 13 images to upload, 1 model to train, 2 generations to run (3 images), 0 to forget." in before.stdout

    done = project.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("Apply complete: 13 uploaded, 1 trained, 0 adopted, 2 generated (3 images), 0 failed in ")

    again = project.run("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes. Novita matches the manifests." in again.stdout

    files = sorted(p.relative_to(project.root).as_posix() for p in (project.root / "outputs").rglob("*") if p.is_file())
    assert files == [
        "outputs/alice-portraits/alice-portraits-1.png",
        "outputs/alice-portraits/alice-portraits-2.png",
        "outputs/alice-portraits/alice-portraits.reconciler.json",
        "outputs/alice-restyle/alice-restyle-1.jpg",
        "outputs/alice-restyle/alice-restyle.reconciler.json",
    ]
    png = (project.root / "outputs/alice-portraits/alice-portraits-1.png").read_bytes()
    assert b"tEXtparameters\x00a photo of ohwx woman" in png
    counts = submissions(project.sim.requests())
    assert len(counts["trainings"]) == 1 and set(counts["trainings"].values()) == {1}
    assert sum(counts["generations"].values()) == 2
    assert sum(counts["uploads"].values()) == 13

    noop = project.apply()
    assert noop.returncode == 0
    assert "No changes. Novita matches the manifests." in noop.stdout


def test_prompt_change_regenerates_only_that_generation(project: Project) -> None:
    assert project.apply().returncode == 0
    mark = len(project.sim.requests())
    project.edit("manifests/generations.yaml", "cinematic lighting", "golden hour light")
    plan = project.run("plan")
    assert "-/+ Generation/alice-portraits" in plan.stdout
    change = "~ prompt: a photo of ohwx woman, cinematic lighting → a photo of ohwx woman, golden hour light"
    assert change in plan.stdout
    assert "Plan: 0 images to upload, 0 models to train, 1 generation to run (2 images), 0 to forget." in plan.stdout
    assert project.apply().returncode == 0
    counts = _new_requests(project.sim, mark)
    assert counts == {
        "trainings": {},
        "generations": {"a photo of ohwx woman, golden hour light": 1},
        "uploads": {},
    }


def test_training_change_retrains_and_regenerates_but_uploads_nothing(project: Project) -> None:
    assert project.apply().returncode == 0
    mark = len(project.sim.requests())
    project.edit("manifests/alice.yaml", "max_train_steps: 500", "max_train_steps: 800")
    plan = project.run("plan")
    assert "~ expert_setting.max_train_steps: 500 → 800" in plan.stdout
    assert "stays in the account: Novita has no delete" in plan.stdout
    assert "Plan: 0 images to upload, 1 model to train, 2 generations to run (3 images), 0 to forget." in plan.stdout
    result = project.apply()
    assert result.returncode == 0, result.stderr
    counts = _new_requests(project.sim, mark)
    assert sum(counts["trainings"].values()) == 1  # type: ignore[attr-defined]
    assert sum(counts["generations"].values()) == 2  # type: ignore[attr-defined]
    assert counts["uploads"] == {}
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_adding_one_image_uploads_exactly_one(project: Project) -> None:
    assert project.apply().returncode == 0
    mark = len(project.sim.requests())
    photos = project.root / "manifests/photos/alice"
    shutil.copy(project.root / "manifests/photos/alice-extra.png", photos / "alice-13.jpg")
    # a png under a .jpg name is refused (bytes, not extension, decide); give it its real extension
    (photos / "alice-13.jpg").rename(photos / "alice-13.png")
    (photos / "alice-13.png").write_bytes((photos / "alice-13.png").read_bytes() + b"\x00")  # new content
    listed = "- photos/alice/*.jpg\n    - photos/alice/alice-13.png"
    project.edit("manifests/alice.yaml", "- photos/alice/*.jpg", listed)
    plan = project.run("plan")
    assert "1 new image to upload (13 already uploaded)" in plan.stdout, plan.stdout + plan.stderr
    assert project.apply().returncode == 0
    counts = _new_requests(project.sim, mark)
    assert sum(counts["uploads"].values()) == 1  # type: ignore[attr-defined]
    assert sum(counts["trainings"].values()) == 1  # type: ignore[attr-defined]


def test_failed_training_fails_its_generations_and_the_rest_goes_on(tmp_path: Path) -> None:
    sim = start_sim(tmp_path / "sim", "--fault", "training-fail-pattern=^alice-")
    try:
        project = make_project(tmp_path, sim)
        (project.root / "manifests/public.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Generation\nmetadata: {name: landscape}\n"
            "spec: {model_name: sd_xl_base_1.0.safetensors, prompt: a mountain lake, output: ../outputs/landscape}\n"
        )
        result = project.apply()
        assert result.returncode == 1
        assert "Error: LoraModel/alice-v1: training alice-v1-" in result.stderr
        assert "ended FAILED on Novita" in result.stderr
        assert "Skipped: Generation/alice-portraits: LoraModel/alice-v1 failed" in result.stderr
        assert "Skipped: Generation/alice-restyle: LoraModel/alice-v1 failed" in result.stderr
        assert "1 generated (1 image), 1 failed, 2 skipped" in result.stdout
        assert (project.root / "outputs/landscape/landscape-1.png").is_file()
        plan = project.run("plan")
        assert "-/+ LoraModel/alice-v1" in plan.stdout and "failed" in plan.stdout
    finally:
        sim.stop()


def test_stale_plan_file_is_refused(project: Project) -> None:
    saved = project.run("plan", "--out", "tfplan")
    assert saved.returncode == 0
    assert "reconciler apply tfplan" in saved.stdout
    project.edit("manifests/generations.yaml", "seed: 123", "seed: 124")
    refused = project.run("apply", "tfplan")
    assert refused.returncode == 1
    assert "Error: tfplan is stale: the manifests or their images changed since it was made." in refused.stderr
    assert not (project.root / "outputs").exists()

    fresh = project.run("plan", "--out", "tfplan")
    assert fresh.returncode == 0
    applied = project.run("apply", "tfplan", "--poll-interval", "0.05")
    assert applied.returncode == 0, applied.stderr
    again = project.run("apply", "tfplan")
    assert again.returncode == 1
    assert "the state changed since it was made" in again.stderr


def test_second_concurrent_apply_is_refused_by_the_lock(project: Project) -> None:
    first = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    assert wait_for(lambda: (project.root / "state/state.json").exists(), timeout=30)
    second = project.apply()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 1
    assert "Error: the state is locked by another reconciler (pid " in second.stderr
    assert "running 'apply'" in second.stderr


def test_apply_needs_auto_approve_without_a_terminal(project: Project) -> None:
    result = project.run("apply")
    assert result.returncode == 2
    assert "pass --auto-approve" in result.stderr
    assert not (project.root / "state").exists()


@pytest.mark.parametrize("when", ["after_uploads", "after_training_submit", "after_generation_submit"])
def test_sigkill_then_apply_again_submits_nothing_twice(project: Project, when: str) -> None:
    proc = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    state_file = project.root / "state/state.json"

    def reached() -> bool:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return False
        entries = state.get("resources", {})
        if when == "after_uploads":
            return len(state.get("images", {})) >= 5
        if when == "after_training_submit":
            return entries.get("LoraModel/alice-v1", {}).get("status") in ("submitting", "training")
        return any(e.get("kind") == "Generation" and e.get("status") == "running" for e in entries.values())

    assert wait_for(reached, timeout=60), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    # A generation whose submit the kill cut cannot be looked up: by default the next apply submits it again,
    # says so, and the state counts it. Nothing else is submitted twice.
    resumed = project.apply()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    counts = submissions(project.sim.requests())
    assert set(counts["trainings"].values()) == {1}
    prompts = {"Generation/alice-portraits": "a photo of ohwx woman, cinematic lighting",
               "Generation/alice-restyle": "an oil painting of ohwx woman, impressionist style"}  # fmt: skip
    entries = project.state()["resources"]
    for addr, prompt in prompts.items():
        again = entries[addr]["resubmits"]
        assert 1 <= counts["generations"][prompt] <= 1 + again, (addr, again, counts)
        if again:
            lines = resumed.stdout.splitlines()
            assert any(addr in line and "submitting again (may be paid twice)" in line for line in lines), (
                resumed.stdout
            )
    total = sum(e["resubmits"] for a, e in entries.items() if a in prompts)
    if total:
        assert f", {total} resubmitted after no answer (may be paid twice) in " in resumed.stdout, resumed.stdout
    assert sum(counts["uploads"].values()) == 13  # a PUT done just before the kill is not repeated
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_an_unanswered_generation_submit_is_submitted_again_and_counted(project: Project) -> None:
    """Novita creates the task and the answer is lost, every time: each submit is retried a few times in the
    apply, all counted; the next apply (faults gone) submits it once more, as its plan says, and converges. The
    pauses before each submit again at a quarter of their length (harness.QUICK_WAITS)."""
    project.env.update(QUICK_WAITS)
    project.sim.faults(specs=["txt2img:drop-after=1"])
    first = project.apply()
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Error: Generation/alice-portraits: no answer from Novita to 4 txt2img submits (last: " in first.stderr
    assert "The next apply submits it again (on_unanswered_submit: resubmit)." in first.stderr
    unanswered = "no answer to the txt2img submit (RemoteProtocolError): it may or may not have run"
    assert first.stdout.count(unanswered) == 3, first.stdout
    assert first.stdout.count("the previous submit got no answer: submitting again (may be paid twice)") == 3
    assert ", 3 resubmitted after no answer (may be paid twice) in " in first.stdout
    prompt = "a photo of ohwx woman, cinematic lighting"
    assert submissions(project.sim.requests())["generations"][prompt] == 4
    entry = project.state()["resources"]["Generation/alice-portraits"]
    assert (entry["status"], entry["unanswered_submits"], entry["resubmits"]) == ("unanswered", 4, 3)
    project.sim.faults(reset=True)
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "Warning" not in plan.stdout, plan.stdout
    line = (
        "  -/+ Generation/alice-portraits     the previous submit got no answer: submitting again (may be paid twice)\n"
    )
    assert line in plan.stdout, plan.stdout
    second = project.apply()
    assert second.returncode == 0, second.stdout + second.stderr
    assert ", 1 resubmitted after no answer (may be paid twice) in " in second.stdout
    assert submissions(project.sim.requests())["generations"][prompt] == 5
    entry = project.state()["resources"]["Generation/alice-portraits"]
    assert (entry["status"], entry["unanswered_submits"], entry["resubmits"]) == ("succeeded", 4, 4)
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_a_held_generation_is_never_resubmitted_on_its_own(project: Project) -> None:
    """on_unanswered_submit: hold (here in reconciler.yaml) keeps an unanswered submit for a person to decide."""
    (project.root / "reconciler.yaml").write_text("apply:\n  on_unanswered_submit: hold\n")
    project.sim.faults(specs=["txt2img:drop-after=1"])  # Novita creates the task, the answer is lost
    first = project.apply()
    assert first.returncode == 1
    assert "Error: Generation/alice-portraits: no answer from Novita to the txt2img submit" in first.stderr
    assert "it is held (on_unanswered_submit: hold)" in first.stderr
    project.sim.faults(reset=True)
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout  # not converged: something waits for a decision
    assert "Warning: Generation/alice-portraits: a previous apply stopped while submitting it" in plan.stdout
    assert "reconciler apply --replace Generation/alice-portraits" in plan.stdout
    held = project.apply()
    assert held.returncode == 1
    assert "Error: 1 resource held for a decision (see the warning above)" in held.stderr
    prompt = "a photo of ohwx woman, cinematic lighting"
    assert submissions(project.sim.requests())["generations"][prompt] == 1
    replaced = project.apply("--replace", "Generation/alice-portraits")
    assert replaced.returncode == 0, replaced.stderr
    assert submissions(project.sim.requests())["generations"][prompt] == 2
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_state_loss_adopts_everything_and_pays_for_nothing(project: Project) -> None:
    assert project.apply().returncode == 0
    mark = len(project.sim.requests())
    shutil.rmtree(project.root / "state")
    plan = project.run("plan")
    assert "<= LoraModel/alice-v1" in plan.stdout
    assert "<= Generation/alice-portraits" in plan.stdout
    summary = "Plan: 0 images to upload, 0 models to train, 0 generations to run, 0 to forget; free: 3 to adopt."
    assert summary in plan.stdout
    assert project.apply().returncode == 0
    counts = _new_requests(project.sim, mark)
    assert counts == {"trainings": {}, "generations": {}, "uploads": {}}
    assert project.run("plan", "--detailed-exitcode").returncode == 0


def test_no_wait_then_collect(project: Project) -> None:
    submitted = project.apply("--no-wait")
    # the generations could not run yet: reported, not hidden, but not a failure either (a CI merge job that
    # submits with --no-wait succeeds; a later apply collects)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert (
        "Left for the next apply: Generation/alice-portraits: LoraModel/alice-v1 is still training (--no-wait); "
        "apply again to generate" in submitted.stderr
    )
    last = submitted.stdout.strip().splitlines()[-1]
    assert last.startswith("Apply complete: 13 uploaded, 0 trained, 0 adopted, 0 generated (0 images), 0 failed, ")
    assert ", 2 left for the next apply (waiting for trainings in flight) in " in last, last
    assert "Still running on Novita (the next apply collects them, nothing is resubmitted):" in submitted.stderr
    plan = project.run("plan")
    assert "~ LoraModel/alice-v1" in plan.stdout
    collected = project.apply()  # waits for the training it finds running, then generates
    assert collected.returncode == 0, collected.stderr
    counts = submissions(project.sim.requests())
    assert set(counts["trainings"].values()) == {1}


def test_json_events(project: Project) -> None:
    result = project.apply("--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "apply_start" and kinds[-1] == "apply_complete"
    assert {"upload", "task_submitted", "task_progress", "task_done", "image_written"} <= set(kinds)
    assert events[-1]["uploaded"] == 13 and events[-1]["images"] == 3
    assert (events[-1]["failed"], events[-1]["forgotten"], events[-1]["submitted_not_waited"]) == (0, 0, [])
    assert (events[-1]["deferred"], events[-1]["resubmitted"], events[-1]["timed_out"]) == (0, 0, False)


def test_no_wait_json_counts_what_waits(project: Project) -> None:
    result = project.apply("--no-wait", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "apply_complete"
    assert (events[-1]["deferred"], events[-1]["failed"], events[-1]["skipped"]) == (2, 0, 0)
    assert events[-1]["submitted_not_waited"] == ["LoraModel/alice-v1"]
    deferred = [e for e in events if e["event"] == "deferred"]
    assert sorted(e["address"] for e in deferred) == ["Generation/alice-portraits", "Generation/alice-restyle"]


def test_sigint_saves_state_and_resumes(project: Project) -> None:
    proc = project.popen("apply", "--auto-approve", "--poll-interval", "0.05")
    state_file = project.root / "state/state.json"
    assert wait_for(
        lambda: (
            state_file.exists()
            and json.loads(state_file.read_text()).get("resources", {}).get("LoraModel/alice-v1", {}).get("status")
            == "training"
        ),
        timeout=60,
    )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Still running on Novita" in err and "LoraModel/alice-v1 (alice-v1-" in err
    assert json.loads(state_file.read_text())["resources"]["LoraModel/alice-v1"]["status"] == "training"
    resumed = project.apply()
    assert resumed.returncode == 0, resumed.stderr
    assert set(submissions(project.sim.requests())["trainings"].values()) == {1}


def test_prune_removes_images_of_forgotten_generations(project: Project) -> None:
    assert project.apply().returncode == 0
    text = (project.root / "manifests/generations.yaml").read_text()
    (project.root / "manifests/generations.yaml").write_text(text.split("---")[1])  # keep alice-restyle only
    plan = project.run("plan")
    assert "- Generation/alice-portraits" in plan.stdout
    assert "its 2 images stay on disk; --prune removes them" in plan.stdout
    assert project.apply("--prune").returncode == 0
    assert not list((project.root / "outputs/alice-portraits").glob("*.png"))
    assert (project.root / "outputs/alice-restyle/alice-restyle-1.jpg").is_file()


def test_the_api_key_is_written_nowhere(project: Project) -> None:
    assert project.apply("--json").returncode == 0
    assert project.run("plan", "--out", "tfplan", "--json").returncode == 0
    hits = [p for p in project.root.rglob("*") if p.is_file() and API_KEY.encode() in p.read_bytes()]
    assert hits == []
    debug = project.run("--debug", "plan")
    assert API_KEY not in debug.stdout + debug.stderr
    assert "Bearer ***" in debug.stderr


@pytest.mark.slow
def test_sim_flag_runs_the_readme_main_job(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(Path(__file__).resolve().parents[2] / "manifests", root / "manifests")
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVITA_")}
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "reconciler", *a], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    first = run("apply", "--sim", "--auto-approve")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Apply complete: 13 uploaded, 1 trained" in first.stdout
    assert (root / "state/sim.json").is_file() and (root / "state/.sim").is_dir()
    second = run("plan", "--sim", "--detailed-exitcode")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No changes. Novita matches the manifests." in second.stdout

# ruff: noqa: E501  (the expected lines are the exact text users see)
"""The mistakes a new user makes, and the day-two commands: the exact message, the exit status, nothing changed.

Each test makes the mistake through the real CLI (click's runner, in this process; `--sim` starts the
simulator in this process too, with millisecond durations), then checks what the user reads, the exit status,
and that the state and the outputs were left as they were.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.load.schema import BASE_MODELS, SAMPLERS

REPO = Path(__file__).resolve().parents[1]
FAST_SIM = {
    "training_queue_seconds": 0.02,
    "training_seconds": 0.06,
    "deploy_seconds": 0.02,
    "generation_queue_seconds": 0.01,
    "generation_seconds": 0.02,
    "random_seed": 0,
}


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The README's example project in a temporary folder, as the current folder; no key; a fast simulator."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "manifests", root / "manifests")
    sim_config = tmp_path / "sim.json"
    sim_config.write_text(json.dumps(FAST_SIM))
    monkeypatch.chdir(root)
    for name in ("NOVITA_API_KEY", "NOVITA_API_BASE", "RECONCILER_STATE_URL", "RECONCILER_WORKSPACE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECONCILER_SIM_CONFIG", str(sim_config))
    yield root


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)
    return result.exit_code, result.stdout, result.stderr


def snapshot(root: Path) -> dict[str, str]:
    """Every file under state/ and outputs/ with the hash of its bytes: 'nothing changed' means equal snapshots."""
    found: dict[str, str] = {}
    for folder in ("state", "outputs"):
        for path in sorted((root / folder).rglob("*")) if (root / folder).exists() else []:
            if path.is_file() and not path.name.endswith((".lock", ".hashcache.json")):
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# -- saved plans remember where they were made ------------------------------------------------------------


def test_a_sim_plan_says_how_to_apply_it_and_applies_without_repeating_sim(example: Path) -> None:
    code, out, _ = run("plan", "--sim", "--out", "p")
    assert code == 0
    assert out.endswith("\nSaved the plan to p. Apply exactly this plan with: reconciler apply --sim p\n")
    code, out, err = run("apply", "p", "--poll-interval", "0.02")  # no --sim, no key: the plan says where
    assert code == 0, err
    assert "  + LoraModel/alice-v1" in out  # the plan is shown before it is applied
    assert out.strip().splitlines()[-1].startswith("Apply complete: 13 uploaded, 1 trained, 0 adopted, 2 generated")


def test_a_stale_sim_plan_names_the_command_that_makes_a_fresh_one(example: Path) -> None:
    assert run("plan", "--sim", "--target", "LoraModel/alice-v1", "--out", "p")[0] == 0
    manifest = example / "manifests/alice.yaml"
    manifest.write_text(manifest.read_text().replace("max_train_steps: 500", "max_train_steps: 600"))
    before = snapshot(example)
    code, out, err = run("apply", "p")
    assert (code, out) == (1, "")
    assert err == (
        "Error: p is stale: the manifests or their images changed since it was made. "
        "Plan again with: reconciler plan --sim --target LoraModel/alice-v1 --out p\n"
    )
    assert snapshot(example) == before


def test_a_sim_plan_is_refused_for_another_state_with_the_command_that_works(example: Path) -> None:
    assert run("plan", "--sim", "--out", "p")[0] == 0
    code, out, err = run("apply", "--state", "state/other.json", "p")
    assert (code, out) == (1, "")
    assert err == (
        "Error: p was made against the simulator, state state/sim.json, workspace default; this apply names the "
        "simulator, state state/other.json, workspace default. Apply it where it was made with: reconciler apply --sim p\n"
    )
    assert not (example / "state/other.json").exists()
    code, out, err = run("apply", "--state", "./state/sim.json", "-f", "./manifests", "p", "--poll-interval", "0.02")
    assert code == 0, err  # the same places, spelt another way
    assert out.strip().splitlines()[-1].startswith("Apply complete: 13 uploaded, 1 trained")


def test_a_real_plan_is_refused_under_sim_and_at_another_endpoint(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", "sk-test")
    assert run("plan", "--no-refresh", "--out", "p")[0] == 0
    code, _, err = run("apply", "--sim", "p")
    assert code == 1
    assert err == (
        "Error: p was made against Novita at https://api.novita.ai, state state/state.json, workspace default; "
        "this apply names the simulator, state state/state.json, workspace default. "
        "Apply it where it was made with: reconciler apply p\n"
    )
    monkeypatch.setenv("NOVITA_API_BASE", "http://127.0.0.1:9")
    code, _, err = run("apply", "p")
    assert code == 1
    assert err == (
        "Error: p was made against Novita at https://api.novita.ai, state state/state.json, workspace default; "
        "this apply would use Novita at http://127.0.0.1:9, state state/state.json, workspace default. "
        "Apply it where it was made with: unset NOVITA_API_BASE; reconciler apply p\n"
    )
    assert snapshot(example) == {}


# -- state list says which state it read ------------------------------------------------------------------


def test_state_list_without_sim_names_the_state_and_points_at_the_simulators(example: Path) -> None:
    code, out, err = run("state", "list")
    assert (code, out, err) == (0, "", "The account's state is empty: there is no state/state.json yet.\n")
    assert run("apply", "--sim", "--auto-approve", "--poll-interval", "0.02")[0] == 0
    code, out, err = run("state", "list")
    assert (code, out) == (0, "")
    assert err == (
        "The account's state is empty: there is no state/state.json yet.\n"
        "The simulator's state state/sim.json has 4 resources: reconciler state list --sim\n"
    )
    code, out, err = run("state", "list", "--sim")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:3] == [
        "Dataset/alice-photos\tsucceeded\t13 images",
        "Generation/alice-portraits\tsucceeded\t2 images in outputs/alice-portraits",
        "Generation/alice-restyle\tsucceeded\t1 image in outputs/alice-restyle",
    ]
    assert lines[3].startswith("LoraModel/alice-v1\tsucceeded\tmodel_") and lines[3].endswith(".safetensors")
    assert not (example / "state/state.json").exists()


# -- reconciler models ------------------------------------------------------------------------------------


def test_models_lists_base_models_by_family_and_samplers_from_the_validation_tables() -> None:
    code, out, err = run("models")
    assert (code, err) == (0, "")
    assert out.startswith(
        "Base models (LoraModel spec.base_model), by family:\n\n"
        "  SD 1.5\n"
        "    v1-5-pruned-emaonly   (the original)\n"
        "    epicrealism_naturalSin_121250\n"
    )
    assert "\n  SDXL\n    stable-diffusion-xl-base-1.0   (the original)\n" in out
    assert out.endswith("\n    DDIM\n    PLMS\n    UniPC\n")
    code, out, _ = run("models", "--json")
    data = json.loads(out)
    assert {m["name"] for m in data["base_models"]} == set(BASE_MODELS)
    assert data["samplers"] == list(SAMPLERS)
    assert {m["family"] for m in data["base_models"]} == {"SD 1.5", "SDXL"}


# -- --target takes a bare name, and says the plan may be incomplete ----------------------------------------

TARGETED_ALICE = """\
Not refreshed (--no-refresh): planned from the state file alone.
Targeted: LoraModel/alice-v1 (and what they depend on).

  + Dataset/alice-photos             13 new images to upload (0 already uploaded)
  + LoraModel/alice-v1               train as alice-v1-e62b23ea (13 images)

Plan: 13 images to upload, 1 model to train, 0 generations to run, 0 to forget.

Warning: resource targeting is in effect, so this plan may be incomplete: it covers only LoraModel/alice-v1 and what it depends on, not every change the manifests ask for. --target is for exceptional cases; plan without it to see everything.

Estimate: 1 training to pay for; about 15m00s (a training takes 15m00s by default, until this state has seen one finish).
  subject training       1
Cost: no prices in reconciler.yaml (Novita publishes none for these APIs); add yours in USD to see it, e.g. `prices: {training: 1.50, image: 0.002}`.
"""


def test_target_accepts_a_unique_bare_name_and_warns_the_plan_may_be_incomplete(example: Path) -> None:
    assert run("plan", "--no-refresh", "--target", "alice-v1") == (0, TARGETED_ALICE, "")
    assert run("plan", "--no-refresh", "--target", "LoraModel/alice-v1") == (0, TARGETED_ALICE, "")


def test_target_suggests_for_an_unknown_or_shared_name(example: Path) -> None:
    code, out, err = run("plan", "--no-refresh", "--target", "alice-v2")
    assert (code, out) == (2, "")
    assert err == "Error: Invalid value for '--target': no such resource: alice-v2 (did you mean LoraModel/alice-v1?)\n"
    manifest = example / "manifests/alice.yaml"
    manifest.write_text(manifest.read_text().replace("alice-photos", "alice-v1"))  # a Dataset and a LoraModel alike
    code, out, err = run("plan", "--no-refresh", "--target", "alice-v1")
    assert (code, out) == (2, "")
    assert err == (
        "Error: Invalid value for '--target': alice-v1 is the name of Dataset/alice-v1 and LoraModel/alice-v1; "
        "give the address\n"
    )
    assert snapshot(example) == {}


# -- run from the wrong folder: -C, and --debug anywhere --------------------------------------------------


def test_the_wrong_folder_says_where_it_looked_and_suggests_chdir(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example / "manifests/photos")
    code, out, err = run("plan", "--sim")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: no manifests/ folder in {example}/manifests/photos. Run reconciler from the project folder, or "
        "name that folder with -C DIR (and the manifests in it with -f PATH); "
        f"there is {example}/manifests: reconciler -C ../.. ...\n"
    )
    monkeypatch.chdir(example.parent)
    code, out, err = run("validate")
    assert (code, out) == (1, "")
    assert err.endswith("; there is project/manifests: reconciler -C project ...\n")
    assert not (example / "state").exists() and not (example.parent / "state").exists()


def test_chdir_resolves_manifests_state_and_plan_files_from_the_folder(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example.parent)
    assert run("-C", "project", "validate") == (0, "4 resources valid\n", "")
    monkeypatch.chdir(example.parent)  # -C changes this process's folder, as it does the real command's
    code, out, _ = run("-C", "project", "plan", "--sim", "--out", "p")
    assert code == 0 and out.endswith("Apply exactly this plan with: reconciler apply --sim p\n")
    assert (example / "p").is_file() and (example / "state/.sim").is_dir()
    assert not (example.parent / "state").exists()
    monkeypatch.chdir(example.parent)
    code, _, err = run("-C", "missing", "validate")
    assert code == 2
    assert "Error: Invalid value for '-C' / '--chdir': Directory 'missing' does not exist." in err


def test_debug_is_accepted_after_the_command(example: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--sim", "--debug"],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Refreshing: 1 page of trainings")
    assert "GET http://127.0.0.1:" in done.stderr and "/v3/training" in done.stderr


# -- show, output, graph ----------------------------------------------------------------------------------

GRAPH_DOT = """\
digraph reconciler {
  rankdir=LR;
  "Dataset/alice-photos" [label="Dataset\\nalice-photos", shape=cylinder];
  "LoraModel/alice-v1" [label="LoraModel\\nalice-v1", shape=box];
  "Generation/alice-portraits" [label="Generation\\nalice-portraits", shape=ellipse];
  "Generation/alice-restyle" [label="Generation\\nalice-restyle", shape=ellipse];
  "Dataset/alice-photos" -> "LoraModel/alice-v1";
  "LoraModel/alice-v1" -> "Generation/alice-portraits";
  "LoraModel/alice-v1" -> "Generation/alice-restyle";
}
"""
GRAPH_MERMAID = """\
flowchart LR
  n0[("Dataset/alice-photos")]
  n1["LoraModel/alice-v1"]
  n2(["Generation/alice-portraits"])
  n3(["Generation/alice-restyle"])
  n0 --> n1
  n1 --> n2
  n1 --> n3
"""


def test_graph_in_dot_and_mermaid(example: Path) -> None:
    assert run("graph") == (0, GRAPH_DOT, "")
    assert run("graph", "--format", "mermaid") == (0, GRAPH_MERMAID, "")
    assert snapshot(example) == {}


def test_show_a_saved_plan_as_plan_prints_it(example: Path) -> None:
    code, planned, _ = run("plan", "--no-refresh", "--out", "p")
    assert code == 0
    code, out, err = run("show", "p")
    assert (code, err) == (0, "")
    plan_text = planned.split("\n\nSaved the plan to")[0] + "\n"
    assert out == (
        "Saved plan p, made against Novita at https://api.novita.ai, state state/state.json, workspace default.\n\n"
        + plan_text
        + "\nApply exactly this plan with: reconciler apply p\n"
    )
    code, out, _ = run("show", "p", "--json")
    data = json.loads(out)
    assert data["summary"]["trainings"] == 1 and data["origin"]["state"] == "state/state.json"
    assert run("show", "missing.plan")[0] == 1


def test_output_after_an_apply_gives_scripts_model_names_and_image_paths(example: Path) -> None:
    assert run("output", "--sim") == (0, "", "The simulator's state is empty: there is no state/sim.json yet.\n")
    assert run("apply", "--sim", "--auto-approve", "--poll-interval", "0.02")[0] == 0
    code, model_name, err = run("output", "--sim", "alice-v1")
    assert (code, err) == (0, "")
    assert re.fullmatch(r"model_\d+_[0-9A-F]+\.safetensors\n", model_name)
    code, out, _ = run("output", "--sim", "Generation/alice-portraits")
    assert out == "outputs/alice-portraits/alice-portraits-1.png\noutputs/alice-portraits/alice-portraits-2.png\n"
    digest = hashlib.sha256((example / "outputs/alice-portraits/alice-portraits-1.png").read_bytes()).hexdigest()
    code, out, _ = run("output", "--sim")
    assert (
        out.splitlines()[0]
        == f"Generation/alice-portraits\toutputs/alice-portraits/alice-portraits-1.png\tsha256:{digest}"
    )
    assert out.splitlines()[-1] == f"LoraModel/alice-v1\t{model_name.strip()}"
    data = json.loads(run("output", "--sim", "--json")[1])
    assert data["LoraModel/alice-v1"]["model_name"] == model_name.strip()
    assert data["Generation/alice-portraits"]["images"][0] == {
        "path": "outputs/alice-portraits/alice-portraits-1.png",
        "sha256": digest,
    }
    code, out, err = run("output", "--sim", "alice")
    assert (code, out) == (2, "")
    assert err == (
        "Error: Invalid value for 'NAME': no output named alice (the outputs are Generation/alice-portraits, "
        "Generation/alice-restyle, LoraModel/alice-v1)\n"
    )
    code, out, _ = run("show", "--sim")
    assert out.startswith("State state/sim.json: serial ")
    assert "\nLoraModel/alice-v1  (succeeded)\n  dataset: alice-photos\n  training: alice-v1-e62b23ea (" in out


# -- init -------------------------------------------------------------------------------------------------


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: Path) -> Path:
    """An empty folder as the current folder (the environment of `example`: no key, a fast simulator)."""
    root = tmp_path / "new"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def test_init_then_validate_plan_and_apply_with_no_edit(empty: Path) -> None:
    code, out, err = run("init")
    assert (code, err) == (0, "")
    assert out == (
        f"Initialized a reconciler project in {empty}:\n"
        "  wrote manifests/example.yaml\n"
        + "".join(f"  wrote manifests/photos/example/photo-0{i}.png\n" for i in range(1, 7))
        + "  wrote reconciler.schema.json\n"
        "  wrote reconciler.yaml\n"
        "  wrote .gitignore\n"
        "\nNext: reconciler validate, then reconciler plan --sim and reconciler apply --sim (a local simulator, no key).\n"
        "Put your own photos in manifests/photos/example/, export NOVITA_API_KEY, and plan and apply without --sim.\n"
    )
    assert run("validate") == (0, "3 resources valid; reconciler.yaml valid\n", "")
    code, out, _ = run("plan", "--sim")
    assert code == 0
    assert (
        "\nPlan: 6 images to upload, 1 model to train, 1 generation to run (2 images), 0 to forget.\n\nEstimate: "
        in out
    )
    code, out, err = run("apply", "--sim", "--auto-approve", "--poll-interval", "0.02")
    assert code == 0, err
    assert "Apply complete: 6 uploaded, 1 trained, 0 adopted, 1 generated (2 images), 0 failed" in out
    assert sorted(p.name for p in (empty / "outputs/example-portraits").glob("*.png")) == [
        "example-portraits-1.png",
        "example-portraits-2.png",
    ]
    assert run("plan", "--sim", "--detailed-exitcode")[0] == 0


def test_init_writes_the_schema_editors_use_and_settings_that_load(empty: Path) -> None:
    assert run("init")[0] == 0
    manifest = (empty / "manifests/example.yaml").read_text()
    assert manifest.startswith("# yaml-language-server: $schema=../reconciler.schema.json\n")
    assert (empty / "reconciler.schema.json").read_text() == run("schema")[1]
    from reconciler.load.config import ProjectConfig, load_config

    loaded = load_config(empty)
    assert loaded.file == empty / "reconciler.yaml" and loaded.config == ProjectConfig()
    ignored = (empty / ".gitignore").read_text().splitlines()
    assert {"state/*.lock", "state/.*.hashcache.json", "state/.sim/"} <= set(ignored)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_init_gitignore_covers_every_workspace_but_keeps_the_states(empty: Path) -> None:
    assert run("init")[0] == 0
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)
    runtime = ["state/state.json.lock", "state/.state.hashcache.json", "state/state.json.backup", "state/sim.json"]
    runtime += [f"state/state.json.d/staging/{name}" for name in ("state.json.lock", ".state.hashcache.json")]
    runtime += [
        "state/state.json.d/staging/state.json.backup",
        "state/journal/state-default.20261204T101500Z-812.jsonl",
    ]
    runtime += ["state/state.json.d/staging/journal/state-staging.20261204T101500Z-812.jsonl"]
    kept = ["state/state.json", "state/state.json.d/staging/state.json", "reconciler.yaml"]

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=empty).returncode == 0

    assert [p for p in runtime if not ignored(p)] == [] and [p for p in kept if ignored(p)] == []


def test_init_never_overwrites_and_never_adds_examples_to_existing_manifests(example: Path) -> None:
    (example / "reconciler.yaml").write_text("apply:\n  parallelism: 4\n")
    before = {p: p.read_bytes() for p in example.rglob("*") if p.is_file()}
    code, out, err = run("init")
    assert (code, err) == (0, "")
    assert out == (
        f"Initialized a reconciler project in {example}:\n"
        "  wrote reconciler.schema.json\n"
        "  wrote .gitignore\n"
        "  skipped the example manifests (manifests/ already holds manifests; they would be applied too)\n"
        "  skipped reconciler.yaml (already there)\n"
        "\nNext: reconciler validate, then reconciler plan --sim and reconciler apply --sim (a local simulator, no key).\n"
    )
    assert {p: p.read_bytes() for p in before} == before
    assert run("validate") == (0, "4 resources valid; reconciler.yaml valid\n", "")


# -- manifest mistakes through the CLI: the message, exit 1, nothing changed --------------------------------

MISTAKES = [
    (
        "our LoraModel under model_name",
        ("generations.yaml", "    - {model: alice-v1, strength: 0.7}", "    - {model_name: alice-v1, strength: 0.7}"),
        'manifests/generations.yaml:12:8: Generation/alice-portraits: spec.loras[0].model_name: "alice-v1" is the '
        "LoraModel alice-v1 of these manifests, not a Novita file name; did you mean `model: alice-v1`?",
    ),
    (
        "sd-1.5 as a base model",
        ("alice.yaml", "base_model: v1-5-pruned-emaonly", "base_model: sd-1.5"),
        'manifests/alice.yaml:22:15: LoraModel/alice-v1: spec.base_model: "sd-1.5" is not one of Novita\'s base models; '
        "for SD 1.5 use `v1-5-pruned-emaonly` (the original) or a fine-tune of it: `epicrealism_naturalSin_121250`, "
        "`chilloutmix_NiPrunedFp32Fix`, `abyssorangemix3AOM3_aom3a3_10864`, `dreamshaper_8_93211`, `WFChild_v1.0`, "
        "`majichenmixrealistic_v10`, `realisticVisionV51_v51VAE_94301`, `realisticVisionV40_v40VAE_81510`, "
        "`somboy_v10_172675` (all: `reconciler models`)",
    ),
    (
        "a colon in an unquoted prompt",
        ("generations.yaml", "prompt: a photo of ohwx woman, cinematic lighting", "prompt: portrait, style: cinematic"),
        "manifests/generations.yaml:9:26: YAML syntax error: mapping values are not allowed in this context; a value "
        'that contains `: ` must be quoted, e.g. prompt: "portrait, style: cinematic"',
    ),
    (
        "a glob that matches no image",
        ("alice.yaml", "    - photos/alice/*.jpg ", "    - photos/alice/*.png "),
        "manifests/alice.yaml:9:7: Dataset/alice-photos: spec.images[0]: `photos/alice/*.png` matches no .png, .jpg, "
        ".jpeg or .webp file (extensions match in any case)",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_manifest_mistakes_stop_before_anything_changes(
    example: Path, edit: tuple[str, str, str], message: str
) -> None:
    assert run("apply", "--sim", "--auto-approve", "--target", "Dataset/alice-photos")[0] == 0
    file, old, new = edit
    path = example / "manifests" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    before = snapshot(example)
    for command in (["validate"], ["plan", "--sim"], ["apply", "--sim", "--auto-approve"]):
        assert run(*command) == (1, "", f"Error: 1 error in the manifests:\n{message}\n"), command
    assert snapshot(example) == before


def test_upper_case_photos_are_trained_on(example: Path) -> None:
    photos = example / "manifests/photos/alice"
    for path in sorted(photos.glob("alice-0[2-5].jpg")):
        path.rename(path.with_name(path.name.replace(".jpg", ".JPG")))
    code, out, _ = run("plan", "--no-refresh")
    assert code == 0
    assert "  + Dataset/alice-photos             13 new images to upload (0 already uploaded)" in out


def test_a_plan_is_refused_in_another_workspace_and_used_in_its_own(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", "sk-test")
    assert run("plan", "--no-refresh", "--workspace", "team-a", "--out", "p")[0] == 0
    code, _, err = run("apply", "--workspace", "team-b", "p")
    assert code == 1
    assert err == (
        "Error: p was made against Novita at https://api.novita.ai, state state/state.json, workspace team-a; "
        "this apply would use Novita at https://api.novita.ai, state state/state.json, workspace team-b. "
        "Apply it where it was made with: reconciler apply --workspace team-a p\n"
    )
    monkeypatch.setenv("RECONCILER_WORKSPACE", "team-b")  # the plan's own workspace wins over the environment's
    code, out, err = run("show", "p")
    assert out.startswith(
        "Saved plan p, made against Novita at https://api.novita.ai, state state/state.json, workspace team-a.\n"
    )
    assert out.endswith("Apply exactly this plan with: reconciler apply --workspace team-a p\n")
    assert snapshot(example) == {}

# ruff: noqa: E501  (the expected plan is the exact text users see)
"""The CLI as a user sees it: exact text, exit codes, help on every command, state commands."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.sim.config import SimConfig
from reconciler.sim.server import running_simulator

REPO = Path(__file__).resolve().parents[1]

FIRST_PLAN = """\
Not refreshed (--no-refresh): planned from the state file alone.

  + Dataset/alice-photos             13 new images to upload (0 already uploaded)
  + LoraModel/alice-v1               train as alice-v1-e62b23ea (13 images)
  + Generation/alice-portraits       2 images, txt2img 512×384; waits for LoraModel/alice-v1
  + Generation/alice-restyle         1 image, img2img 512×512; waits for LoraModel/alice-v1

Plan: 13 images to upload, 1 model to train, 2 generations to run (3 images), 0 to forget.

Estimate: 1 training, 3 images to pay for; about 15m06s (a training takes 15m00s by default, until this state has seen one finish).
  subject training                1
  img2img 512×512, 25 steps       1
  txt2img 512×384, 20 steps       2
Cost: no prices in reconciler.yaml (Novita publishes none for these APIs); add yours in USD to see it, e.g. `prices: {training: 1.50, image: 0.002}`.
"""


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    monkeypatch.delenv("NOVITA_API_BASE", raising=False)
    return tmp_path


@pytest.fixture
def sim_env(example: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_simulator(SimConfig.fast(), None) as sim:
        monkeypatch.setenv("NOVITA_API_KEY", "sk-cli-test")
        monkeypatch.setenv("NOVITA_API_BASE", sim.base_url)
        yield sim.base_url


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


ALL_COMMANDS = [name for name, _ in _commands(cli)]


def test_every_command_is_there() -> None:
    for name in ["validate", "plan", "apply", "refresh", "state", "state list", "state show", "state rm", "import",
                 "force-unlock", "schema", "sim", "sim serve", "init", "show", "output", "graph",
                 "models"]:  # fmt: skip
        assert name in ALL_COMMANDS


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_every_command_has_help(name: str) -> None:
    command = dict(_commands(cli))[name]
    assert command.help and len(command.help.strip()) > 20, f"{name} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name} {param.opts[0]} has no help text"
    code, out, _ = run(*name.split(), "--help")
    assert code == 0 and "Usage:" in out
    if isinstance(command, click.Group):  # its listing shows each command's summary whole, not cut with "..."
        listing = out.split("Commands:", 1)[1]
        assert "..." not in listing, f"{name} --help cuts a command's summary:{listing}"


def test_offline_plan_exact_text(example: Path) -> None:
    code, out, _ = run("plan", "--no-refresh")
    assert (code, out) == (0, FIRST_PLAN)


def test_plan_without_key_is_one_line(example: Path) -> None:
    code, _, err = run("plan")
    assert code == 1
    assert err == (
        "Error: NOVITA_API_KEY is not set: export your Novita API key, or add --sim to use the local simulator\n"
    )


def test_detailed_exitcode(example: Path) -> None:
    assert run("plan", "--no-refresh", "--detailed-exitcode")[0] == 2
    (example / "manifests/bad.yaml").write_text("apiVersion: reconciler/v1\nkind: Dataset\n")
    code, _, err = run("plan", "--no-refresh", "--detailed-exitcode")
    assert code == 1
    assert err == (
        "Error: 2 errors in the manifests:\n"
        "manifests/bad.yaml:1:1: metadata: required field missing\n"
        "manifests/bad.yaml:1:1: spec: required field missing\n"
    )


def test_json_plan_schema(example: Path) -> None:
    code, out, _ = run("plan", "--no-refresh", "--json")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {
        "format_version", "reconciler_version", "state", "desired_digest", "targets", "warnings", "refresh",
        "summary", "outputs", "resource_changes", "prune", "estimate",
    }  # fmt: skip
    assert data["outputs"] == {"fetch": [], "store": []}
    assert data["format_version"] == "1.0"
    assert data["state"] == {"serial": 0, "lineage": None}
    assert data["summary"] == {
        "uploads": 13, "trainings": 1, "waits": 0, "adopts": 0, "moves": 0, "copies": 0, "generations": 2,
        "generation_images": 3, "forgets": 0, "changes": 4,
    }  # fmt: skip
    first = data["resource_changes"][1]
    assert set(first) == {
        "address", "kind", "name", "actions", "reason", "reason_kind", "reason_fields", "paid", "before", "after",
        "changes", "notes", "task_name", "task_id", "uploads", "images", "matrix", "source",
    }  # fmt: skip
    assert (first["address"], first["actions"], first["before"]) == ("LoraModel/alice-v1", ["create"], None)
    assert (first["reason_kind"], first["reason_fields"], first["paid"]) == (
        "new_training",
        {"task_name": first["task_name"], "images": 13},
        True,
    )
    assert first["after"]["expert_setting"] == {
        "instance_prompt": "a close photo of ohwx woman", "class_prompt": "person", "max_train_steps": 500,
        "learning_rate": 0.0001,
    }  # fmt: skip


def test_markdown_plan(example: Path) -> None:
    code, out, _ = run("plan", "--no-refresh", "--format", "markdown")
    assert code == 0
    assert out.startswith("### reconciler plan\n\n**Plan: 13 images to upload, 1 model to train")
    assert "| `+` | `LoraModel/alice-v1` | train as alice-v1-e62b23ea (13 images) |" in out


def test_unknown_target_suggests(example: Path) -> None:
    code, _, err = run("plan", "--no-refresh", "--target", "LoraModel/alice-v2")
    assert code == 2
    assert "no such resource: LoraModel/alice-v2 (did you mean LoraModel/alice-v1?)" in err


def test_target_limits_the_plan(example: Path) -> None:
    code, out, _ = run("plan", "--no-refresh", "--target", "LoraModel/alice-v1")
    assert code == 0
    assert "Generation/" not in out.split("\n\n", 2)[2]
    assert "Targeted: LoraModel/alice-v1 (and what they depend on)." in out


def test_state_commands_after_an_apply(sim_env: str, example: Path) -> None:
    code, out, err = run("apply", "--auto-approve", "--poll-interval", "0.02")
    assert code == 0, out + err
    code, out, _ = run("state", "list")
    lines = out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        ["Dataset/alice-photos", "succeeded"],
        ["Generation/alice-portraits", "succeeded"],
        ["Generation/alice-restyle", "succeeded"],
        ["LoraModel/alice-v1", "succeeded"],
    ]
    assert lines[1].endswith("2 images in outputs/alice-portraits")
    code, out, _ = run("state", "show", "LoraModel/alice-v1")
    shown = json.loads(out)
    assert shown["task_name"] == "alice-v1-e62b23ea" and shown["model_name"].startswith("model_")
    task_id = shown["task_id"]
    code, _, err = run("state", "show", "LoraModel/nope")
    assert code == 1 and "LoraModel/nope is not in the state" in err

    assert run("state", "rm", "LoraModel/alice-v1")[1] == "Removed LoraModel/alice-v1 from the state.\n"
    code, out, _ = run("plan")
    assert "<= LoraModel/alice-v1" in out
    code, out, _ = run("import", "LoraModel/alice-v1", task_id)
    assert code == 0 and out == f"Imported alice-v1-e62b23ea ({task_id}, SUCCESS) as LoraModel/alice-v1.\n"
    code, out, _ = run("plan", "--detailed-exitcode")
    assert code == 0 and "No changes. Novita matches the manifests." in out

    code, out, _ = run("refresh")
    assert code == 0 and "The state already matches the account." in out
    assert run("force-unlock", "--yes")[1] == "The state is not locked.\n"


def test_saved_plan_apply(sim_env: str, example: Path) -> None:
    code, out, _ = run("plan", "--out", "my.plan")
    assert code == 0 and out.endswith("Apply exactly this plan with: reconciler apply my.plan\n")
    code, out, err = run("apply", "my.plan", "--poll-interval", "0.02")
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("Apply complete: 13 uploaded, 1 trained, 0 adopted, 2 generated")
    code, _, err = run("apply", "my.plan")
    assert code == 1 and "my.plan is stale: the state changed since it was made" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["apply", "--auto-approve", "--timeout", "5x"],
            "Error: Invalid value for '--timeout': '5x' is not a duration: use e.g. 90s, 30m, 1h30m "
            "(a bare number is seconds)",
        ),
        (
            ["apply", "--auto-approve", "--timeout", "0"],
            "Error: Invalid value for '--timeout': '0' is not a duration above 0",
        ),
        (
            ["apply", "--auto-approve", "--stall-timeout", "soon"],
            "Error: Invalid value for '--stall-timeout': 'soon' is not a duration: use e.g. 90s, 30m, 1h30m "
            "(a bare number is seconds)",
        ),
        (
            ["plan", "--on-unanswered-submit", "maybe"],
            "Error: Invalid value for '--on-unanswered-submit': 'maybe' is not one of 'resubmit', 'hold'.",
        ),
    ],
)
def test_bad_stop_and_policy_flags_are_usage_errors(example: Path, args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2 and message in err, err
    assert not (example / "state").exists()


def test_the_policy_flag_decides_what_the_plan_does_with_an_unanswered_submit(sim_env: str, example: Path) -> None:
    """A generation whose submit got no answer: the default resubmits it, `hold` (the flag, or the generation's
    spec) turns it into a warning; the flag wins over the spec for the run."""
    code, _, err = run("apply", "--auto-approve", "--poll-interval", "0.02")
    assert code == 0, err
    state_file = example / "state/state.json"
    data = json.loads(state_file.read_text())
    data["resources"]["Generation/alice-portraits"].update(status="unanswered", task_id=None)
    state_file.write_text(json.dumps(data))
    line = (
        "  -/+ Generation/alice-portraits     the previous submit got no answer: submitting again (may be paid twice)\n"
    )
    code, out, _ = run("plan", "--detailed-exitcode")
    assert code == 2 and line in out and "Warning" not in out, out
    code, out, _ = run("plan", "--detailed-exitcode", "--on-unanswered-submit", "hold")
    assert code == 2 and line not in out, out
    assert "Warning: Generation/alice-portraits: a previous apply stopped while submitting it" in out
    assert "It is held (on_unanswered_submit: hold)" in out
    generations = example / "manifests/generations.yaml"
    generations.write_text(
        generations.read_text().replace(
            "  output: ../outputs/alice-portraits", "  output: ../outputs/alice-portraits\n  on_unanswered_submit: hold"
        )
    )
    code, out, _ = run("plan")
    assert "It is held (on_unanswered_submit: hold)" in out and line not in out, out
    code, out, _ = run("plan", "--on-unanswered-submit", "resubmit")
    assert line in out and "Warning" not in out, out
    (example / "reconciler.yaml").write_text("apply:\n  on_unanswered_submit: hold\n")
    generations.write_text(
        generations.read_text().replace("on_unanswered_submit: hold", "on_unanswered_submit: resubmit")
    )
    code, out, _ = run("plan")
    assert line in out, out  # the generation's own setting wins over the project's


def test_the_top_level_help_lists_every_summary_whole() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "..." not in out.split("Commands:", 1)[1], out


def test_an_interrupted_member_still_running_is_not_also_listed_as_not_done(capsys: pytest.CaptureFixture[str]) -> None:
    """The summary after Ctrl-C: a matrix member swept over a prompt with " (" in it is running remotely, once."""
    from reconciler.apply import ApplyResult
    from reconciler.apply.outcome import StillRunning, Stopped
    from reconciler.cli.plan_apply import _finish_apply

    member = 'Generation/grid[prompt="a photo (studio light)"]'
    result = ApplyResult(
        interrupted=True,
        still_running=[StillRunning(member, "task-1")],
        outcomes={member: Stopped("interrupt", "waiting"), "Generation/other": Stopped("interrupt", "before-submit")},
    )
    with pytest.raises(SystemExit) as stopped:
        _finish_apply(result)
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert f"  {member} (task-1)\n" in err
    assert "Not done yet, 1 resource (the next apply does them): Generation/other\n" in err


def test_a_manifest_problem_is_said_before_an_unreadable_state(example: Path) -> None:
    """The state is read before the manifests (the memory of a large project), but its problem is said after
    theirs, as ever; neither file is touched."""
    state = example / "state" / "state.json"
    state.parent.mkdir()
    state.write_bytes(b'{"version": 1,, }')
    manifest = example / "manifests" / "alice.yaml"
    manifest.write_text(manifest.read_text().replace("kind: Dataset", "kind: Datasett", 1))
    code, _, err = run("plan", "--no-refresh")
    assert code == 1 and 'unknown kind "Datasett"' in err and "state file" not in err
    manifest.write_text(manifest.read_text().replace("kind: Datasett", "kind: Dataset", 1))
    code, _, err = run("plan", "--no-refresh")
    assert code == 1 and "the state file is corrupt" in err
    assert state.read_bytes() == b'{"version": 1,, }'

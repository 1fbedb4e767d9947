"""`reconciler validate` and `reconciler schema` as a user runs them: exact text, exit status, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli, main

from .manifest_helpers import GENERATION, MODEL, project

REPO = Path(__file__).resolve().parent.parent


def _run_main(
    args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Through `main`, the entry point that turns ReconcilerError into a message and exit status 1."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["reconciler", *args])
    with pytest.raises(SystemExit) as exited:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_validate_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.output == "4 resources valid\n"


def test_validate_one_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, ["validate", "-f", "manifests/alice.yaml"])
    assert (result.exit_code, result.output) == (0, "2 resources valid\n")


def test_validate_invalid_lists_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(
        tmp_path,
        {
            "m/lm.yaml": MODEL + "    max_train_step: 500\n",
            "m/gen.yaml": GENERATION + "  steps: 0\n  loras:\n    - {model: lm2}\n",
        },
    )
    code, out, err = _run_main(["validate", "-f", "m"], tmp_path, monkeypatch, capsys)
    assert code == 1
    assert out == ""
    assert err == (
        "Error: 3 errors in the manifests:\n"
        "m/gen.yaml:9:10: Generation/gen: spec.steps: must be between 1 and 100; got 0\n"
        'm/gen.yaml:11:15: Generation/gen: spec.loras[0].model: no LoraModel named "lm2"; did you mean `lm`?\n'
        "m/lm.yaml:11:5: LoraModel/lm: spec.expert_setting.max_train_step: unknown field; "
        "did you mean `max_train_steps`?\n"
    )
    assert "Traceback" not in err


def test_validate_missing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_main(["validate"], tmp_path, monkeypatch, capsys)
    assert (code, err) == (
        1,
        f"Error: no manifests/ folder in {tmp_path}. Run reconciler from the project folder, or name that folder "
        "with -C DIR (and the manifests in it with -f PATH)\n",
    )


def test_validate_as_a_subprocess() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate"], cwd=REPO, capture_output=True, text=True, env=env, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "4 resources valid\n", "")


def test_validate_invalid_as_a_subprocess(tmp_path: Path) -> None:
    project(tmp_path, {"m/x.yaml": "apiVersion: reconciler/v1\nkind: [\n"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "-f", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("Error: 1 error in the manifests:\nm/x.yaml:3:1: YAML syntax error: ")
    assert "Traceback" not in done.stderr


def test_schema_prints_json() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["discriminator"]["propertyName"] == "kind"
    one = json.loads(CliRunner().invoke(cli, ["schema", "--kind", "Generation"]).output)
    assert one["properties"]["kind"]["const"] == "Generation"


@pytest.mark.parametrize("command", ["validate", "schema"])
def test_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: cli {command} [OPTIONS]")

"""The rules import-linter cannot express (docs/ARCHITECTURE.md, "Layers").

Which module may import which is checked on the import graph, transitively, by `lint-imports` (the contracts in
pyproject.toml's `[tool.importlinter]`, run by .ci/run). What is left here is about calls, not imports: a pure
module opens no file and reads no clock or randomness; only the state's backends (and the commands that open a
store for a one-step edit) save state.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reconciler"


def contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def source_file(module: str) -> Path:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


PURE = [str(m) for m in contract("pure")["source_modules"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_open_no_file_and_read_no_clock(module: str) -> None:
    text = source_file(module).read_text(encoding="utf-8")
    for call in ("open(", ".read_text(", ".write_text(", ".read_bytes(", ".write_bytes(", "time.time(", "random."):
        assert call not in text, f"{module} calls {call}"


def test_the_pure_contract_names_existing_modules() -> None:
    """A module renamed or moved must not silently drop out of the contract."""
    assert all(source_file(m).is_file() for m in PURE), [m for m in PURE if not source_file(m).is_file()]


def test_only_the_state_backends_and_the_commands_save_state() -> None:
    writers = {
        p.relative_to(PACKAGE).as_posix()
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] != "sim"
        and ("StateStore(" in p.read_text(encoding="utf-8") or "store.save()" in p.read_text(encoding="utf-8"))
    }
    # the commands open the store of each command and save its one-step edits (state rm, import, refresh);
    # the applier saves through its committer, which the state package's store writes
    assert all(w == "state/file.py" or w.startswith("commands/") for w in writers), writers


@pytest.mark.parametrize("package", ["apply", "plan"])
def test_no_function_in_the_applier_or_the_planner_runs_over_60_lines(package: str) -> None:
    """The applier reads as named steps, the planner as small decisions (docs/ARCHITECTURE.md): a longer function
    is split, not grown."""
    long = [
        f"{path.relative_to(PACKAGE).as_posix()}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((PACKAGE / package).glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert not long, long

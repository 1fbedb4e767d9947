"""Import rules that keep the layers honest (docs/ARCHITECTURE.md, "Layers"): checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"

PURE = [
    "plan/planner.py",
    "plan/policy.py",
    "present/render.py",
    "present/graph.py",
    "present/readout.py",
    "errors.py",
    "status.py",
    "observe/facts.py",
    "text.py",
    "load/imagetype.py",
    "urls.py",
    "apply/outcome.py",
    "apply/polling.py",
    "load/words.py",
    "load/schema.py",
    "load/loaded.py",
    "load/messages.py",
    "load/matrix.py",
    "present/gallery/model.py",
    "present/gallery/html.py",
]
IO_LIBRARIES = {"httpx", "click", "starlette", "uvicorn", "rich", "filelock", "socket", "subprocess", "shutil"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_do_no_io(name: str) -> None:
    found = {m.split(".")[0] for m in imports(PACKAGE / name)}
    assert not found & IO_LIBRARIES, f"{name} imports {found & IO_LIBRARIES}"
    assert not {m for m in imports(PACKAGE / name) if m.startswith(("reconciler.novita", "reconciler.sim"))}
    text = (PACKAGE / name).read_text()
    for call in ("open(", ".read_text(", ".write_text(", ".read_bytes(", "time.time(", "random."):
        assert call not in text, f"{name} calls {call}"


def test_only_the_client_speaks_http() -> None:
    speakers = {
        p.relative_to(PACKAGE).as_posix()
        for p in modules(PACKAGE)
        if "httpx" in {m.split(".")[0] for m in imports(p)} and p.relative_to(PACKAGE).parts[0] != "sim"
    }
    assert speakers <= {"novita/__init__.py", "novita/client.py", "novita/wire.py"}, speakers


def test_the_simulator_shares_no_code_with_the_client() -> None:
    for path in modules(PACKAGE / "sim"):
        ours = {m for m in imports(path) if m.startswith("reconciler") and not m.startswith("reconciler.sim")}
        assert ours <= {"reconciler"}, f"{path.name} imports {ours}"
    for path in modules(PACKAGE / "novita"):
        assert not {m for m in imports(path) if m.startswith("reconciler.sim")}


def test_only_the_edges_start_the_simulator() -> None:
    users = {
        p.relative_to(PACKAGE).as_posix()
        for p in modules(PACKAGE)
        if p.relative_to(PACKAGE).parts[0] != "sim" and any(m.startswith("reconciler.sim") for m in imports(p))
    }
    assert users <= {"cli/__init__.py", "commands/workspace.py"}, users


def test_only_the_command_line_modules_use_click() -> None:
    users = {
        p.relative_to(PACKAGE).as_posix() for p in modules(PACKAGE) if "click" in {m.split(".")[0] for m in imports(p)}
    }
    assert all(u.startswith("cli/") or u == "sim/cli.py" for u in users), users


def test_nothing_below_the_cli_imports_it() -> None:
    for path in modules(PACKAGE):
        parts = path.relative_to(PACKAGE).parts
        if path.name != "__main__.py" and parts[0] not in ("cli", "sim"):
            assert not {m for m in imports(path) if m.startswith("reconciler.cli")}, path


def test_only_the_state_package_writes_state() -> None:
    writers = {
        p.relative_to(PACKAGE).as_posix()
        for p in modules(PACKAGE)
        if p.relative_to(PACKAGE).parts[0] != "sim"
        and ("StateStore(" in p.read_text(encoding="utf-8") or "store.save()" in p.read_text(encoding="utf-8"))
    }
    # the workflow opens the store of each command and saves its one-step edits (state rm, import, refresh);
    # the applier saves through its committer, which the state package's store writes
    assert writers <= {"state/file.py", "commands/workflow.py", "commands/state_mv.py"}, writers


def test_only_the_backends_speak_to_their_servers() -> None:
    for library, allowed in (("psycopg", {"state/postgres.py"}), ("fsspec", {"outputs/store.py"})):
        users = {
            p.relative_to(PACKAGE).as_posix()
            for p in modules(PACKAGE)
            if library in {m.split(".")[0] for m in imports(p)}
        }
        assert users <= allowed, (library, users)

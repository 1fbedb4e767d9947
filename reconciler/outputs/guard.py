"""The one guard every write of a generation's files goes through: only inside its own output folder.

Downloads, adoption, fetches from the outputs remote, `pull` and the move into history all write on a path from
`inside_output(folder, name)`: a plain image or sidecar name (or `history/<folder>/<name>`, see
`reconciler.filenames`) inside the generation's output folder, whoever named it (a sidecar in the remote, a shared
state), never in `.git/` nor in a folder where a manifest or a setting lives.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from reconciler.errors import ReconcilerError
from reconciler.filenames import HISTORY, folder_problem, name_problem, short

SETTINGS_SUFFIXES = (".yaml", ".yml")  # a folder holding one holds manifests or reconciler.yaml: never written


class UnsafePath(ReconcilerError):
    """A write of a generation's file refused: `name` is not a file that generation may write in `folder`."""

    def __init__(self, folder: str, name: str, problem: str) -> None:
        super().__init__(f"{name!r} in {folder}: {problem}; nothing was written")
        self.folder = folder
        self.name = name
        self.problem = problem


def inside_output(folder: Path, name: str) -> Path:
    """`folder / name` for a file of the generation whose output folder is `folder`, or UnsafePath.

    `name` is a plain image or sidecar name, or `history/<folder>/<name>`. The folder may not be (or be inside)
    `.git`, nor hold a manifest or a setting (a `.yaml`/`.yml` file); the result, symlinks resolved, stays inside it.
    """
    return OutputFolder(folder).path(name)


class OutputFolder:
    """A generation's output folder for `inside_output` on several names: the folder is resolved and looked into
    once, at the first name that passes (a sidecar and its images; a no-op plan's thousand folders)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._checked: tuple[Path, str | None] | None = None  # (resolved, its problem) once looked at

    def path(self, name: str) -> Path:
        """`inside_output(self.folder, name)`."""
        problem = _name_problem(name)
        if problem is None:
            if self._checked is None:
                resolved = self.folder.resolve()
                self._checked = resolved, _folder_problem(resolved)
            resolved, problem = self._checked
            if problem is None and _leaves(resolved, name):
                problem = "it leaves the output folder through a symbolic link"
        if problem is not None:
            raise UnsafePath(os.fspath(self.folder), name, problem)
        return self.folder / name


def _name_problem(name: str) -> str | None:
    parts = PurePosixPath(name).parts if "\\" not in name else (name,)
    if len(parts) == 3 and parts[0] == HISTORY:
        return folder_problem(parts[1]) or name_problem(parts[2], sidecar=True)
    if len(parts) == 1 and name == parts[0]:
        return name_problem(name, sidecar=True)
    return f"{short(name)} is not a file name in an output folder"


def _leaves(resolved: Path, name: str) -> bool:
    """Whether `resolved / name` (a name that passed `_name_problem`: plain parts, no `..`) ends outside the
    resolved folder. Only a symbolic link among its own parts can take it out: they are looked at one by one, and
    the whole path resolved only when one is a link."""
    path = resolved
    for part in name.split("/"):
        path = path / part
        if os.path.islink(path):
            return not (resolved / name).resolve().is_relative_to(resolved)
    return False


def _folder_problem(resolved: Path) -> str | None:
    if ".git" in resolved.parts:
        return "the folder is inside .git"
    try:
        held = sorted(e.name for e in os.scandir(resolved) if e.name.lower().endswith(SETTINGS_SUFFIXES))
    except OSError:
        held = []  # not there yet: nothing in it to protect
    if held:
        return f"the folder holds {held[0]} (manifests and settings are never written over)"
    return None

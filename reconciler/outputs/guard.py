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
    parts = PurePosixPath(name).parts if "\\" not in name else (name,)
    problem: str | None
    if len(parts) == 3 and parts[0] == HISTORY:
        problem = folder_problem(parts[1]) or name_problem(parts[2], sidecar=True)
    elif len(parts) == 1 and name == parts[0]:
        problem = name_problem(name, sidecar=True)
    else:
        problem = f"{short(name)} is not a file name in an output folder"
    if problem is None:
        problem = _folder_problem(folder)
    if problem is None:
        dest = folder / name
        if not dest.resolve().is_relative_to(folder.resolve()):
            problem = "it leaves the output folder through a symbolic link"
        else:
            return dest
    raise UnsafePath(os.fspath(folder), name, problem)


def _folder_problem(folder: Path) -> str | None:
    resolved = folder.resolve()
    if ".git" in resolved.parts:
        return "the folder is inside .git"
    try:
        held = sorted(e.name for e in os.scandir(resolved) if e.name.lower().endswith(SETTINGS_SUFFIXES))
    except OSError:
        held = []  # not there yet: nothing in it to protect
    if held:
        return f"the folder holds {held[0]} (manifests and settings are never written over)"
    return None

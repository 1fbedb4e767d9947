"""`reconciler state mv`: give a state entry another address (pure: State in, State changed in place).

Terraform's `state mv`: the paid work an entry records (its identity, task, model, images, history) stays the
same; only the address it is known by changes. The run cache finds most renames by identity on its own; this is
for what the planner cannot prove (a rename together with a changed request), so the change is planned as a
replace of the renamed resource (its images kept in history) instead of a create and a forget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.load.matrix import matrix_of, normalise_address, split_label
from reconciler.state.model import ResourceEntry, State

KINDS = ("Dataset", "LoraModel", "Generation")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    entry: ResourceEntry  # as it will be at the target


def plan_move(state: State, source: str, target: str) -> Move:
    """Check a move and say what the entry will look like; raises ReconcilerError naming what to fix."""
    source, target = normalise_address(source), normalise_address(target)
    source_kind, target_kind = _kind(source, "FROM"), _kind(target, "TO")
    if source_kind != target_kind:
        raise ReconcilerError(
            f"cannot move {source} to {target}: an entry keeps its kind ({source_kind}); "
            f"use an address like {source_kind}/{_name(target)}"
        )
    entry = state.entry(source)
    if entry is None:
        raise ReconcilerError(f"{source} is not in the state; `reconciler state list` shows what it holds")
    if source == target:
        raise ReconcilerError(f"{source} is already at that address; nothing to move")
    if state.entry(target) is not None:
        raise ReconcilerError(
            f"{target} is already in the state; `reconciler state rm {target}` first if it should go, "
            "or choose another address"
        )
    name = _name(target)
    base = matrix_of(name)
    update: dict[str, object] = {"name": name}
    if hasattr(entry, "matrix"):
        update["matrix"] = base
        update["axes"] = _axes(name, base) if base else []
    return Move(source, target, entry.model_copy(update=update))


def apply_move(state: State, move: Move) -> None:
    """Carry out a checked move: the entry leaves its old address and takes the new one."""
    del state.resources[move.source]
    state.resources[move.target] = move.entry


def _kind(addr: str, which: str) -> str:
    kind, sep, name = addr.partition("/")
    if not sep or kind not in KINDS:
        raise ReconcilerError(
            f"{which} {addr!r} is not an address; write Kind/name with Kind one of {', '.join(KINDS)} "
            "(e.g. Generation/alice-portraits)"
        )
    base = matrix_of(name) or name
    if not _NAME.match(base):
        raise ReconcilerError(
            f"{which} {addr!r}: {base!r} is not a valid name ([a-z0-9][a-z0-9-]{{0,62}}, as in the manifests)"
        )
    return kind


def _name(addr: str) -> str:
    return addr.partition("/")[2]


def _axes(name: str, base: str) -> list[tuple[str, object]]:
    """A member's axes from its label (values as YAML reads them: 7.5 is a number, Euler a a string)."""
    import yaml

    axes: list[tuple[str, object]] = []
    for part in split_label(name[len(base) + 1 : -1]):
        label, _, text = part.partition("=")
        axes.append((label, yaml.safe_load(text) if text else text))
    return sorted(axes)

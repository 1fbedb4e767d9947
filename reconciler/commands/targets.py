"""What `--target` and `--replace` name: checked against the manifests and the state, resolved to addresses.

The resolved scope is returned to the command that asked, never written back into its Settings (which keep the
flags as typed).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.desired.resources import Desired, matrix_address
from reconciler.errors import UsageError
from reconciler.load.matrix import normalise_address
from reconciler.state import State


@dataclass(frozen=True)
class Scope:
    """What a plan is limited to (`--target`) and what it replaces (`--replace`), as resolved addresses."""

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()


EVERYTHING = Scope()  # no --target, no --replace


def resolve_scope(desired: Desired, state: State, targets: Iterable[str], replace: Iterable[str]) -> Scope:
    """`--target` and `--replace` as typed, resolved (a usage error names what is wrong with either)."""
    return Scope(
        tuple(check_targets(desired, state, targets)), tuple(check_targets(desired, state, replace, "--replace"))
    )


def check_targets(desired: Desired, state: State, targets: Iterable[str], option: str = "--target") -> list[str]:
    """The addresses given on the command line, each naming a resource of the manifests or the state.

    A bare name (`alice-v1`) stands for the one resource of that name, whatever its kind; a name that several
    kinds share, or an address that names nothing, is a usage error that says what was meant. A matrix's address
    (`Generation/alice-grid`) stands for all its members; a member's axes may be given in any order.
    """
    names = set(desired.addresses()) | set(state.resources) | set(desired.matrices())
    names |= {m for m in map(matrix_address, state.resources) if m is not None}
    known = sorted(names)
    by_name: dict[str, list[str]] = {}
    for addr in known:
        by_name.setdefault(addr.partition("/")[2], []).append(addr)
    resolved: list[str] = []
    problems: list[str] = []
    for given in targets:
        if normalise_address(given) in names:
            resolved.append(normalise_address(given))
        elif "/" not in given and len(by_name.get(given, [])) == 1:
            resolved.append(by_name[given][0])
        elif "/" not in given and given in by_name:
            problems.append(f"{given} is the name of {' and '.join(by_name[given])}; give the address")
        else:
            near = difflib.get_close_matches(given, known, n=1) or difflib.get_close_matches(given, list(by_name), n=1)
            meant = (
                (by_name[near[0]][0] if near[0] in by_name and len(by_name[near[0]]) == 1 else near[0]) if near else ""
            )
            problems.append(f"no such resource: {given}" + (f" (did you mean {meant}?)" if meant else ""))
    if problems:
        raise UsageError(f"Invalid value for '{option}': " + "; ".join(problems))
    return resolved

"""Saved plans (`plan --out FILE`, `apply FILE`, `show FILE`): the exact Plan, where it was made, what makes it stale.

A plan file records the state's lineage and serial and the digest of everything desired (manifests and
image bytes); `apply FILE` refuses it when any of them changed since. It also records where it was made (the
simulator or Novita's base URL, the state location as typed with any password redacted, the workspace, the
manifest paths and targets): `apply FILE` uses those unless the command line names others, and then refuses
with the command that would work. It holds no key.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import PlanFileError
from reconciler.files import atomic_write
from reconciler.observe.facts import PruneFile
from reconciler.plan.changes import AttrChange, Plan, RefreshSummary, ResourceChange
from reconciler.plan.estimate import estimate_of
from reconciler.plan.reasons import Note, PlanWarning, Reason, from_record, record
from reconciler.state.backend import DEFAULT_STATE, SIM_STATE

PLANFILE_VERSION = 3  # 2 recorded the origin; 3 records each reason, note and warning as a kind and its fields
SIMULATOR = "simulator"


@dataclass(frozen=True)
class Origin:
    """Where a plan was made: the command line that reproduces it, and what it ran against."""

    sim: bool
    endpoint: str  # SIMULATOR, or Novita's base URL
    state: str  # the state location as typed, any password redacted
    workspace: str
    files: tuple[str, ...] = ()  # -f as typed; () is the default manifests/
    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()

    def describe(self) -> str:
        against = "the simulator" if self.sim else f"Novita at {self.endpoint}"
        return f"{against}, state {self.state}, workspace {self.workspace}"

    def flags(self, *, with_scope: bool) -> list[str]:
        """The flags that choose the same endpoint, state and manifests (and, for `plan`, the same scope)."""
        flags = ["--sim"] if self.sim else []
        if Path(self.state) != (SIM_STATE if self.sim else DEFAULT_STATE):
            flags += ["--state", self.state]
        if self.workspace != "default":
            flags += ["--workspace", self.workspace]
        for file in self.files:
            flags += ["-f", file]
        if with_scope:
            for target in self.targets:
                flags += ["--target", target]
            for addr in self.replace:
                flags += ["--replace", addr]
        return flags

    def plan_command(self, path: Path | str) -> str:
        return shlex.join(["reconciler", "plan", *self.flags(with_scope=True), "--out", str(path)])

    def apply_command(self, path: Path | str) -> str:
        return shlex.join(["reconciler", "apply", *self.flags(with_scope=False), str(path)])


@dataclass(frozen=True)
class SavedPlan:
    plan: Plan
    origin: Origin | None  # None: unknown (saved without one)


def save_plan(plan: Plan, path: Path, origin: Origin | None = None, readable: dict[str, Any] | None = None) -> None:
    """Write `plan` to `path`, with where it was made (None: unknown, `apply FILE` then uses its command line) and
    its readable form (`plan --json`'s document, rendered by the caller; None: none)."""
    data = {
        "planfile_version": PLANFILE_VERSION,
        "origin": asdict(origin) if origin is not None else None,
        "plan": _plan_record(plan),
        "readable": readable,
    }
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def load_plan(path: Path) -> SavedPlan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such plan file") from None
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"{path}: not a reconciler plan file ({exc})") from None
    version = data.get("planfile_version") if isinstance(data, dict) else None
    if version not in (1, 2, PLANFILE_VERSION):
        raise PlanFileError(f"{path}: not a reconciler plan file of version {PLANFILE_VERSION}")
    try:
        origin = _origin(data.get("origin"))
        if version != PLANFILE_VERSION:  # its reasons are sentences, not the values this reconciler reads
            again = origin.plan_command(path) if origin else f"reconciler plan --out {shlex.quote(str(path))}"
            raise PlanFileError(
                f"{path} was saved by an earlier reconciler (plan file version {version}; this one reads version "
                f"{PLANFILE_VERSION}). Plan again with: {again}"
            )
        return SavedPlan(_plan(data["plan"]), origin)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"{path}: the plan file is damaged ({exc})") from None


def _origin(raw: dict[str, Any] | None) -> Origin | None:
    if raw is None:
        return None
    return Origin(
        **{**raw, "files": tuple(raw["files"]), "targets": tuple(raw["targets"]), "replace": tuple(raw["replace"])}
    )


def settle(
    origin: Origin, path: Path, *, sim: bool | None, state: str | None, files: tuple[str, ...]
) -> tuple[bool, str, tuple[str, ...]]:
    """(sim, state, files) for applying a saved plan: the plan's own, unless the command line says otherwise,
    and then the command line must say the same (a plan made against the simulator is never applied to the
    account, nor one made with one state to another)."""
    chosen = (origin.sim if sim is None else sim, origin.state if state is None else state, files or origin.files)
    if chosen != (origin.sim, origin.state, origin.files):
        asked = Origin(chosen[0], SIMULATOR if chosen[0] else origin.endpoint, chosen[1], origin.workspace, chosen[2])
        raise PlanFileError(
            f"{path} was made against {origin.describe()}"
            f"{_files_note(origin)}; this apply names {asked.describe()}{_files_note(asked)}. "
            f"Apply it where it was made with: {origin.apply_command(path)}"
        )
    if "***" in origin.state:
        raise PlanFileError(f"{path} was made with the state {origin.state}; give its full location with --state")
    return chosen


def check_endpoint(origin: Origin, path: Path, endpoint: str, workspace: str, default_endpoint: str) -> None:
    """Refuse to apply a plan at another Novita endpoint or in another workspace than where it was made
    (`default_endpoint`: Novita's base URL when NOVITA_API_BASE is unset)."""
    if origin.sim or (endpoint == origin.endpoint and workspace == origin.workspace):
        return
    here = Origin(False, endpoint, origin.state, workspace, origin.files)
    unset, assign = "", ""
    if endpoint != origin.endpoint and origin.endpoint == default_endpoint:
        unset = "unset NOVITA_API_BASE; "
    elif endpoint != origin.endpoint:
        assign += f"NOVITA_API_BASE={shlex.quote(origin.endpoint)} "
    raise PlanFileError(
        f"{path} was made against {origin.describe()}; this apply would use {here.describe()}. "
        f"Apply it where it was made with: {unset}{assign}{origin.apply_command(path)}"
    )


def _files_note(origin: Origin) -> str:
    return f", manifests {' '.join(origin.files)}" if origin.files else ""


def _plan_record(plan: Plan) -> dict[str, Any]:
    """The plan as JSON data: its dataclasses' fields, with each reason, note and warning as a kind and its fields."""
    raw = asdict(plan)
    for change, saved in zip(plan.changes, raw["changes"], strict=True):
        saved["reason"] = record(change.reason)
        saved["notes"] = [record(n) for n in change.notes]
    raw["warnings"] = [record(w) for w in plan.warnings]
    return raw


def _plan(raw: dict[str, Any]) -> Plan:
    changes = tuple(
        ResourceChange(
            **{
                **c,
                "reason": from_record(c["reason"], Reason),
                "changes": tuple(AttrChange(**a) for a in c["changes"]),
                "notes": tuple(from_record(n, Note) for n in c["notes"]),
                "uploads": tuple(c["uploads"]),
                "known_tasks": None if c.get("known_tasks") is None else tuple(c["known_tasks"]),
            }
        )
        for c in raw["changes"]
    )
    refresh = RefreshSummary(**raw["refresh"]) if raw.get("refresh") else None
    return Plan(
        changes=changes,
        state_serial=int(raw["state_serial"]),
        state_lineage=str(raw["state_lineage"]),
        desired_digest=str(raw["desired_digest"]),
        refresh=refresh,
        targets=tuple(raw.get("targets") or ()),
        warnings=tuple(from_record(w, PlanWarning) for w in raw.get("warnings") or ()),
        fetches=tuple((str(a), int(n)) for a, n in raw.get("fetches") or ()),
        stores=tuple((str(a), int(n)) for a, n in raw.get("stores") or ()),
        prune=bool(raw.get("prune")),
        prunable=tuple(PruneFile(**f) for f in raw.get("prunable") or ()),
        prune_kept=tuple(raw.get("prune_kept") or ()),
        estimate=estimate_of(raw.get("estimate")),
    )


def check_fresh(saved: SavedPlan, path: Path, *, serial: int, lineage: str, desired_digest: str) -> None:
    """Refuse a plan made against another state or other manifests; say the command that makes a fresh one."""
    plan = saved.plan
    again = saved.origin.plan_command(path) if saved.origin else f"reconciler plan --out {shlex.quote(str(path))}"
    if plan.state_lineage and lineage != plan.state_lineage:
        raise PlanFileError(
            f"{path} was made for another state (lineage {plan.state_lineage}, this state is {lineage}). "
            f"Plan again with: {again}"
        )
    if serial != plan.state_serial:
        raise PlanFileError(
            f"{path} is stale: the state changed since it was made (serial {plan.state_serial} → {serial}). "
            f"Plan again with: {again}"
        )
    if desired_digest != plan.desired_digest:
        raise PlanFileError(
            f"{path} is stale: the manifests or their images changed since it was made. Plan again with: {again}"
        )

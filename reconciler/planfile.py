"""Saved plans (`plan --out FILE`, `apply FILE`): the exact Plan, plus what makes it stale.

A plan file records the state's lineage and serial and the digest of everything desired (manifests and
image bytes). `apply FILE` refuses it when any of them changed since. It holds no key and no URL.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reconciler.errors import PlanFileError
from reconciler.files import atomic_write
from reconciler.plan import AttrChange, Plan, RefreshSummary, ResourceChange
from reconciler.render import plan_json

PLANFILE_VERSION = 1


def save_plan(plan: Plan, path: Path) -> None:
    data = {
        "planfile_version": PLANFILE_VERSION,
        "plan": asdict(plan),
        "readable": plan_json(plan),
    }
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def load_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such plan file") from None
    except (OSError, ValueError) as exc:
        raise PlanFileError(f"{path}: not a reconciler plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("planfile_version") != PLANFILE_VERSION:
        raise PlanFileError(f"{path}: not a reconciler plan file of version {PLANFILE_VERSION}")
    try:
        return _plan(data["plan"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"{path}: the plan file is damaged ({exc})") from None


def _plan(raw: dict[str, Any]) -> Plan:
    changes = tuple(
        ResourceChange(
            **{
                **c,
                "changes": tuple(AttrChange(**a) for a in c["changes"]),
                "notes": tuple(c["notes"]),
                "uploads": tuple(c["uploads"]),
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
        warnings=tuple(raw.get("warnings") or ()),
        fetches=tuple((str(a), int(n)) for a, n in raw.get("fetches") or ()),
        stores=tuple((str(a), int(n)) for a, n in raw.get("stores") or ()),
    )


def check_fresh(plan: Plan, path: Path, *, serial: int, lineage: str, desired_digest: str) -> None:
    """Refuse a plan made against another state or other manifests."""
    if plan.state_lineage and lineage != plan.state_lineage:
        raise PlanFileError(
            f"{path} was made for another state (lineage {plan.state_lineage}, this state is {lineage}). "
            "Run `reconciler plan` again."
        )
    if serial != plan.state_serial:
        raise PlanFileError(
            f"{path} is stale: the state changed since it was made (serial {plan.state_serial} → {serial}). "
            "Run `reconciler plan --out` again."
        )
    if desired_digest != plan.desired_digest:
        raise PlanFileError(
            f"{path} is stale: the manifests or their images changed since it was made. "
            "Run `reconciler plan --out` again."
        )

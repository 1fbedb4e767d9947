"""Pure: `reconciler explain ADDRESS` as values, and their words (text and JSON).

An explanation says what a resource's identity is made of (what was asked of Novita), its hash, where the run
cache holds that identity already (the state, history folders, another resource, the outputs remote, a training
on the account) and what the next apply does about it, with the plan's own typed reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.observe.runcache import Holding, TrainingHolding
from reconciler.plan.changes import ResourceChange
from reconciler.plan.reasons import fields_of
from reconciler.present.wording import reason_text
from reconciler.text import plural

SOURCES = {
    "state": "the state",
    "history": "a history folder",
    "forgotten": "a forgotten generation's files",
    "folder": "an output folder's sidecar",
    "remote": "the outputs remote",
    "plan": "this plan",
    "account": "the account's trainings",
}


@dataclass(frozen=True)
class Explanation:
    address: str
    identity: str | None  # None: a LoRA it uses is not trained yet, so what it asks for is known after apply
    fields: dict[str, Any]  # what the identity is the hash of
    held: tuple[Holding | TrainingHolding, ...]  # where the run cache holds that identity, best first
    change: ResourceChange | None  # what the next apply does (None: nothing)
    waits_for: tuple[str, ...] = ()  # our LoraModels whose trained model is not known yet
    task_name: str | None = None  # a LoraModel's Novita task name (`<name>-<8 hex>`)

    @property
    def pays(self) -> bool:
        return self.change is not None and self.change.reason.paid


def explain_text(e: Explanation) -> str:
    lines = [e.address]
    if e.identity is None:
        needs = ", ".join(f"LoraModel/{m}" for m in e.waits_for)
        lines.append(
            f"  identity   known after apply: {needs} {'has' if len(e.waits_for) == 1 else 'have'} no trained model yet"
        )
    else:
        lines.append(f"  identity   {e.identity}")
    if e.task_name:
        lines.append(f"  task name  {e.task_name} (the identity's first 8 hex: found by them on the account)")
    made = _flatten(e.fields)
    lines.append("  made of    " + (made[0] if made else "(nothing)"))
    lines += [f"             {line}" for line in made[1:]]
    if e.held:
        lines.append("  held in    " + _holding(e.held[0]))
        lines += [f"             {_holding(h)}" for h in e.held[1:]]
    else:
        lines.append("  held in    nowhere yet: no state entry, history folder, outputs remote or training holds it")
    lines.append("  next apply " + _next(e))
    return "\n".join(lines) + "\n"


def explain_json(e: Explanation) -> str:
    data = {
        "address": e.address,
        "identity": e.identity,
        "task_name": e.task_name,
        "waits_for": [f"LoraModel/{m}" for m in e.waits_for],
        "fields": e.fields,
        "held": [_holding_json(h) for h in e.held],
        "next_apply": None
        if e.change is None
        else {
            "action": e.change.action,
            "paid": e.change.reason.paid,
            "reason": reason_text(e.change.reason),
            "reason_kind": e.change.reason.kind,
            "reason_fields": fields_of(e.change.reason),
        },
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _next(e: Explanation) -> str:
    if e.change is None:
        return "nothing: it matches what is held (no change, nothing paid)"
    money = "pays" if e.change.reason.paid else "free"
    return f"{e.change.action} ({money}): {reason_text(e.change.reason)}"


def _holding(h: Holding | TrainingHolding) -> str:
    if isinstance(h, TrainingHolding):
        state = "trained" if h.succeeded else "in flight"
        model = f", model {h.model_name}" if h.model_name else ""
        owner = f" ({h.owner})" if h.source == "state" else ""
        return f"{SOURCES[h.source]}: training {h.task_name}{owner}, {state}{model}"
    owner = f" of {h.owner}" if h.owner else ""
    return f"{SOURCES[h.source]}: {plural(len(h.files), 'image')}{owner} in {h.where}"


def _holding_json(h: Holding | TrainingHolding) -> dict[str, Any]:
    if isinstance(h, TrainingHolding):
        return {
            "source": h.source,
            "owner": h.owner,
            "task_name": h.task_name,
            "task_id": h.task_id,
            "model_name": h.model_name,
            "succeeded": h.succeeded,
        }
    return {
        "source": h.source,
        "owner": h.owner,
        "where": h.where,
        "files": [{"path": p, "sha256": s} for p, s in h.files],
        "task_id": h.task_id,
        "seed": h.seed,
    }


def _flatten(value: Any, prefix: str = "") -> list[str]:
    """`request.prompt: a photo of…`, one line per leaf; a list of images as its count."""
    if isinstance(value, dict):
        if not value:
            return [f"{prefix}: {{}}"] if prefix else []
        out: list[str] = []
        for key in value:
            out += _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list):
        if prefix == "images":
            captioned = sum(1 for item in value if isinstance(item, list) and len(item) > 1 and item[1])
            return [f"images: {plural(len(value), 'image')} by content hash, {captioned} with a caption, in order"]
        if not value:
            return [f"{prefix}: []"]
        out = []
        for i, item in enumerate(value):
            out += _flatten(item, f"{prefix}[{i}]")
        return out
    return [f"{prefix}: {json.dumps(value, ensure_ascii=False)}"]

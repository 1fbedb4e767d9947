"""Pure: Plan -> text (Terraform-like, colour optional), JSON, and markdown for pull-request comments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler import __version__
from reconciler.desired.resources import matrix_address
from reconciler.plan.changes import Action, AttrChange, Plan, ResourceChange
from reconciler.plan.reasons import fields_of
from reconciler.present.estimate import budget_lines, budget_markdown, estimate_json, estimate_lines, estimate_markdown
from reconciler.present.wording import note_text, reason_text, warning_text
from reconciler.text import plural, size

JSON_FORMAT_VERSION = "1.0"


@dataclass(frozen=True)
class ActionLook:
    """How a plan shows one action: its symbol, colour, legend and the words that count it in a matrix heading."""

    symbol: str
    colour: str
    legend: str
    count: str


# One row per Action (a new action adds its row here; tests check that every Action has one).
ACTIONS: dict[Action, ActionLook] = {
    "create": ActionLook("+", "green", "create", "to create"),
    "replace": ActionLook("-/+", "yellow", "replace (train or generate again)", "to replace"),
    "resume": ActionLook("~", "cyan", "wait for work in flight (not an update)", "to wait for"),
    "adopt": ActionLook("<=", "blue", "adopt what is already there", "to adopt"),
    "forget": ActionLook("-", "red", "forget", "to forget"),
}
SYMBOLS: dict[Action, str] = {action: look.symbol for action, look in ACTIONS.items()}
ANSI = {"green": 32, "yellow": 33, "blue": 34, "cyan": 36, "red": 31}
NO_CHANGES = "No changes. Novita matches the manifests."


def summary_line(plan: Plan) -> str:
    if plan.empty:
        return NO_CHANGES
    parts = [
        plural(plan.uploads, "image") + " to upload",
        plural(plan.trainings, "model") + " to train",
    ]
    if plan.waits:
        parts.append(f"{plan.waits} to wait for")
    if plan.adopts:
        parts.append(f"{plan.adopts} to adopt")
    gens = plural(plan.generations, "generation") + " to run"
    if plan.generations:
        gens += f" ({plural(plan.generation_images, 'image')})"
    parts.append(gens)
    parts.append(f"{plan.forgets} to forget")
    if plan.prune and plan.prunable:
        parts.append(plural(len(plan.prunable), "file") + " to prune")
    return "Plan: " + ", ".join(parts) + "."


def refresh_line(plan: Plan) -> str:
    r = plan.refresh
    if r is None:
        return "Not refreshed (--no-refresh): planned from the state file alone."
    flight = f", {plural(r.in_flight, 'training')} in flight" if r.in_flight else ""
    return f"Refreshing: {plural(r.pages, 'page')} of trainings ({plural(r.tasks, 'task')}, {r.ours} ours){flight}."


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _attr_line(change: AttrChange) -> str:
    return f"~ {change.path}: {format_value(change.before)} → {format_value(change.after)}"


TARGETED = (
    "Warning: resource targeting is in effect, so this plan may be incomplete: it covers only {targets} "
    "and what {they} on, not every change the manifests ask for. --target is for exceptional cases; "
    "plan without it to see everything."
)


def legend_line(plan: Plan) -> str:
    """What the symbols of this plan mean (shown under the plan on a terminal)."""
    used = [action for action in ACTIONS if any(c.action == action for c in plan.changes)]
    return "Symbols: " + ", ".join(f"{ACTIONS[a].symbol} {ACTIONS[a].legend}" for a in used)


def render_text(plan: Plan, *, colour: bool = False, legend: bool = False) -> str:
    """The plan as a person reads it: refresh line, one block per change, the summary line (and, with `legend`,
    what its symbols mean); a targeted plan ends with the warning that it may be incomplete."""

    def style(text: str, action: Action) -> str:
        return f"\x1b[1;{ANSI[ACTIONS[action].colour]}m{text}\x1b[0m" if colour else text

    lines = [*budget_lines(plan), refresh_line(plan), ""]
    if plan.targets:
        lines.insert(1, "Targeted: " + ", ".join(plan.targets) + " (and what they depend on).")
    if plan.empty:
        lines.append(NO_CHANGES if not plan.warnings else "No changes will be made on their own; see the warnings.")
        lines += _outputs_lines(plan) + _prune_lines(plan) + _warning_lines(plan) + _targeted_lines(plan)
        return "\n".join(lines + estimate_lines(plan)) + "\n"
    groups = _matrix_groups(plan.changes)
    indents = ["    " if matrix_address(c.address) in groups else "  " for c in plan.changes]
    heads = [f"{indent}{SYMBOLS[c.action]} {c.address}" for indent, c in zip(indents, plan.changes, strict=True)]
    width = max([37, *(len(h) + 2 for h in heads)])
    shown: set[str] = set()
    for head, indent, change in zip(heads, indents, plan.changes, strict=True):
        matrix = matrix_address(change.address)
        if matrix in groups and matrix not in shown:
            shown.add(matrix)
            lines.append(f"  {matrix}" + " " * max(1, width - len(matrix) - 2) + groups[matrix])
        symbol = SYMBOLS[change.action]
        styled = indent + style(symbol, change.action) + head[len(indent) + len(symbol) :]
        lines.append(styled + " " * (width - len(head)) + reason_text(change.reason))
        lines.extend(indent + "    " + _attr_line(a) for a in change.changes)
        lines.extend(indent + "    " + note_text(note) for note in change.notes)
    lines += ["", summary_line(plan)] if plan.changes else [summary_line(plan)]
    if legend:
        lines.append(legend_line(plan))
    lines += _outputs_lines(plan) + _prune_lines(plan) + _warning_lines(plan) + _targeted_lines(plan)
    return "\n".join(lines + estimate_lines(plan)) + "\n"


def outputs_lines(plan: Plan) -> list[str]:
    """What the output folders and the outputs remote need: copies only, free (nothing is generated)."""
    lines = []
    if plan.fetches:
        lines.append(
            f"Outputs: {plural(plan.fetch_images, 'image')} to fetch from the outputs remote (free) for "
            f"{_addresses(plan.fetches)}: `reconciler pull` or `reconciler apply` writes them."
        )
    if plan.stores:
        lines.append(
            f"Outputs: {plural(plan.store_images, 'image')} to store in the outputs remote for "
            f"{_addresses(plan.stores)}: `reconciler apply` stores them."
        )
    return lines


def _addresses(items: tuple[tuple[str, int], ...], limit: int = 3) -> str:
    addresses = [a for a, _ in items]
    return ", ".join(addresses[:limit]) + (f" and {len(addresses) - limit} more" if len(addresses) > limit else "")


def _outputs_lines(plan: Plan) -> list[str]:
    lines = outputs_lines(plan)
    return ["", *lines] if lines else []


def _matrix_groups(changes: tuple[ResourceChange, ...]) -> dict[str, str]:
    """Each matrix with members in the plan → its heading: `matrix, 9 members: 6 to create, 3 to replace`."""
    counts: dict[str, dict[Action, int]] = {}
    for change in changes:
        matrix = matrix_address(change.address)
        if matrix is not None:
            by_action = counts.setdefault(matrix, {})
            by_action[change.action] = by_action.get(change.action, 0) + 1
    headings = {}
    for matrix, by_action in counts.items():
        total = sum(by_action.values())
        parts = ", ".join(f"{n} {ACTIONS[action].count}" for action, n in by_action.items())
        headings[matrix] = f"matrix, {plural(total, 'member')}: {parts}"
    return headings


def _prune_lines(plan: Plan) -> list[str]:
    """Without --prune, how many recorded files `--prune` would remove; with it, each of them."""
    files = plan.prunable
    total = size(sum(f.size for f in files))
    lines: list[str] = []
    if not plan.prune:
        if files:
            lines = [
                "",
                f"Outputs: {plural(len(files), 'file')} ({total}) in history or left by forgotten generations; "
                "`apply --prune` removes them (`plan --prune` lists them).",
            ]
        return lines
    if files:
        lines = ["", f"Prune: apply --prune removes {plural(len(files), 'file')} ({total}):"]
        lines += [f"  - {f.path}  ({f.what} of {f.owner})" for f in files]
    elif not plan.prune_kept:
        lines = ["", "Prune: no history or forgotten outputs to remove."]
    if plan.prune_kept:
        lines += ["", f"Kept: {plural(len(plan.prune_kept), 'file')} changed since written:"]
        lines += [f"  {path}" for path in plan.prune_kept]
    return lines


def _warning_lines(plan: Plan) -> list[str]:
    return [line for w in plan.warnings for line in ("", f"Warning: {warning_text(w)}")]


def _targeted_lines(plan: Plan) -> list[str]:
    return ["", _targeted(plan)] if plan.targets else []


def _targeted(plan: Plan) -> str:
    they = "it depends" if len(plan.targets) == 1 else "they depend"
    return TARGETED.format(targets=", ".join(plan.targets), they=they)


def _change_json(change: ResourceChange) -> dict[str, Any]:
    return {
        "address": change.address,
        "kind": change.kind,
        "name": change.name,
        "actions": [change.action],
        "reason": reason_text(change.reason),
        "reason_kind": change.reason.kind,
        "reason_fields": fields_of(change.reason),
        "paid": change.paid,
        "before": change.before,
        "after": change.after,
        "changes": [{"path": a.path, "before": a.before, "after": a.after} for a in change.changes],
        "notes": [note_text(n) for n in change.notes],
        "task_name": change.task_name,
        "task_id": change.task_id,
        "uploads": len(change.uploads),
        "images": change.images,
        "matrix": matrix_address(change.address),
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    """The machine-readable plan; the schema is documented in README (format_version 1.0)."""
    refresh = None
    if plan.refresh is not None:
        r = plan.refresh
        refresh = {"pages": r.pages, "tasks": r.tasks, "ours": r.ours, "in_flight": r.in_flight}
    return {
        "format_version": JSON_FORMAT_VERSION,
        "reconciler_version": __version__,
        "state": {"serial": plan.state_serial, "lineage": plan.state_lineage or None},
        "desired_digest": plan.desired_digest,
        "targets": list(plan.targets),
        "warnings": [warning_text(w) for w in plan.warnings],
        "refresh": refresh,
        "summary": {
            "uploads": plan.uploads,
            "trainings": plan.trainings,
            "waits": plan.waits,
            "adopts": plan.adopts,
            "generations": plan.generations,
            "generation_images": plan.generation_images,
            "forgets": plan.forgets,
            "changes": len(plan.changes),
        },
        "outputs": {
            "fetch": [{"address": a, "images": n} for a, n in plan.fetches],
            "store": [{"address": a, "images": n} for a, n in plan.stores],
        },
        "resource_changes": [_change_json(c) for c in plan.changes],
        "prune": {
            "requested": plan.prune,
            "files": [
                {"path": f.path, "sha256": f.sha256, "size": f.size, "owner": f.owner, "what": f.what}
                for f in plan.prunable
            ],
            "kept_changed": list(plan.prune_kept),
        },
        "estimate": estimate_json(plan),
    }


def render_json(plan: Plan) -> str:
    return json.dumps(plan_json(plan), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def render_markdown(plan: Plan) -> str:
    """A pull-request comment: summary, a table of changes, the full text plan folded."""
    out = [
        "### reconciler plan",
        "",
        *budget_markdown(plan),
        f"**{summary_line(plan)}**",
        "",
        f"_{refresh_line(plan)}_",
        "",
    ]
    out += [f"> **Warning:** {warning_text(w)}\n" for w in plan.warnings]
    out += [f"_{line}_\n" for line in outputs_lines(plan)]
    if plan.targets:
        out.append("> **" + _targeted(plan).replace(":", ":**", 1) + "\n")
    if plan.empty:
        return "\n".join(out + estimate_markdown(plan))
    out += ["| | Resource | Why |", "|---|---|---|"]
    for change in plan.changes:
        reason = reason_text(change.reason).replace("|", "\\|")
        out.append(f"| `{SYMBOLS[change.action]}` | `{change.address}` | {reason} |")
    out += [
        "",
        "<details><summary>Full plan</summary>",
        "",
        "```text",
        render_text(plan).rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out + estimate_markdown(plan))

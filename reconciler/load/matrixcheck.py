"""Checks of a document's `matrix`: each axis a sweepable field with valid, distinct values; the members it
expands to each valid; and a Generation's member count when it uses a swept LoraModel."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from reconciler.load.drafts import Collector, Draft
from reconciler.load.matrix import (
    LIMITS,
    SWEEPABLE,
    Axis,
    AxisPath,
    combinations,
    labels,
    member_label,
    parse_path,
    pattern,
    spelled,
    value_at,
    with_value,
)
from reconciler.load.messages import translate
from reconciler.load.schema import DOCUMENTS
from reconciler.load.words import describe, dotted, suggest


def check_matrix(draft: Draft, out: Collector) -> None:
    """Check a document's `matrix` and expand it into draft.members, every problem located in the matrix."""
    raw = draft.raw_spec.get("matrix")
    if draft.valid is None or not isinstance(raw, dict):
        return
    spec_model: type[BaseModel] = type(draft.valid.spec)  # type: ignore[attr-defined]
    base = {k: v for k, v in draft.raw_spec.items() if k != "matrix"}
    if not raw:
        out.draft(draft, ("spec", "matrix"), "a matrix needs at least one axis, e.g. `seed: [1, 2, 3]`", at_key=True)
        return
    found: list[tuple[str, AxisPath, list[Any]]] = []
    ok = True
    seen: dict[AxisPath, str] = {}
    for key, values in raw.items():
        path = _axis_path(draft, key, base, out)
        if path is None:
            ok = False
            continue
        if path in seen:
            out.draft(draft, ("spec", "matrix", key), f"the same field as `{seen[path]}`; give it once", at_key=True)
            ok = False
            continue
        seen[path] = key
        checked = _axis_values(draft, spec_model, base, key, path, values, out)
        if checked is None:
            ok = False
            continue
        found.append((key, path, checked))
    if not ok:
        return
    names = labels([path for _, path, _ in found])
    draft.axes = [Axis(path, label, tuple(v)) for (_, path, v), label in zip(found, names, strict=True)]
    sizes = [len(axis.values) for axis in draft.axes]
    count = 1
    for size in sizes:
        count *= size
    if count > LIMITS[draft.kind]:
        shape = " × ".join(str(size) for size in sizes)
        out.draft(
            draft,
            ("spec", "matrix"),
            f"this matrix makes {count} members ({shape}); at most {LIMITS[draft.kind]} per {draft.kind}",
            at_key=True,
        )
        return
    by_label = {axis.label: axis for axis in draft.axes}
    reported = 0
    for axes in combinations(draft.axes):
        spec = base
        for label, value in axes:
            spec = with_value(spec, by_label[label].path, value)
        try:
            draft.members.append((axes, spec_model.model_validate(spec)))
        except ValidationError as exc:
            for error in exc.errors():
                for located in translate(spec_model, error):
                    if reported < 3:
                        message = f"{dotted(located.path)}: {located.message}"
                        out.draft(draft, ("spec", "matrix"), f"member [{member_label(axes)}]: {message}", at_key=True)
                    reported += 1


def _axis_path(draft: Draft, key: str, base: dict[str, Any], out: Collector) -> AxisPath | None:
    """The field path a matrix key names, if it can be swept; else a located problem and None."""
    where = ("spec", "matrix", key)
    allowed = SWEEPABLE[draft.kind]
    shown = ", ".join(allowed)
    path = parse_path(key)
    if path is None:
        out.draft(draft, where, f"not a field path; write it like `{allowed[0]}` or `{allowed[-1]}`", at_key=True)
        return None
    if pattern(path) not in allowed:
        if _names_field(DOCUMENTS[draft.kind].model_fields["spec"].annotation, path):
            message = f"`{key}` cannot be swept; a {draft.kind} matrix sweeps {shown}"
        else:
            message = f"unknown field{suggest(key, [a.replace('[N]', '[0]') for a in allowed])}"
        out.draft(draft, where, message, at_key=True)
        return None
    for depth, part in enumerate(path):
        if isinstance(part, int):
            items = value_at(base, path[:depth]) if _has(base, path[:depth]) else None
            count = len(items) if isinstance(items, list) else 0
            if part >= count:
                out.draft(
                    draft,
                    where,
                    f"spec.{spelled(path[:depth])} has no item [{part}] (it has {count})",
                    at_key=True,
                )
                return None
    return path


def _names_field(model: Any, path: AxisPath) -> bool:
    """Whether `path` names a field of the document model `model` (list indexes step into the items)."""
    current = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return False
        current = _model_in(fields[part].annotation)
    return True


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `list[LoraRef]` or `HiresFix | None`, else itself."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _has(data: Any, path: AxisPath) -> bool:
    try:
        value_at(data, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _axis_values(
    draft: Draft,
    spec_model: type[BaseModel],
    base: dict[str, Any],
    key: str,
    path: AxisPath,
    values: list[Any],
    out: Collector,
) -> list[Any] | None:
    """Each value validated as that field would be (its range, type, enum), duplicates refused."""
    checked: list[Any] = []
    first: dict[Any, int] = {}
    ok = True
    for index, value in enumerate(values):
        where = ("spec", "matrix", key, index)
        try:
            valid = spec_model.model_validate(with_value(base, path, value))
        except ValidationError as exc:
            ok = False
            for error in exc.errors():
                for located in translate(spec_model, error):
                    prefix = "" if located.path == path else f"{dotted(located.path)}: "
                    out.draft(draft, where, prefix + located.message)
            continue
        got = value_at(valid.model_dump(mode="python"), path)
        marker = (type(got) is bool, got)
        if marker in first:
            ok = False
            out.draft(draft, where, f"duplicate value {describe(value)} (the same as [{first[marker]}]); give it once")
            continue
        first[marker] = index
        checked.append(got)
    return checked if ok else None


def check_swept_models(drafts: list[Draft], out: Collector) -> None:
    """A Generation that uses a swept LoraModel runs once per model member: count those members too."""
    swept = {d.name: len(d.members) for d in drafts if d.kind == "LoraModel" and d.members and d.name}
    if not swept:
        return
    for draft in drafts:
        if draft.kind != "Generation" or draft.valid is None:
            continue
        count = max(1, len(draft.members))
        used = _swept_refs(draft, swept)
        for name in used:
            count *= swept[name]
        if used and count > LIMITS["Generation"]:
            out.draft(
                draft,
                ("spec", "loras"),
                f"runs once per member of {', '.join(f'LoraModel/{n}' for n in used)}: {count} members in all; "
                f"at most {LIMITS['Generation']} per Generation",
                at_key=True,
            )


def _swept_refs(draft: Draft, swept: dict[str, int]) -> list[str]:
    loras = draft.raw_spec.get("loras")
    names = [ref.get("model") for ref in loras if isinstance(ref, dict)] if isinstance(loras, list) else []
    return sorted({name for name in names if isinstance(name, str) and name in swept})

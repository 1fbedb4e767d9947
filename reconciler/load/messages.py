"""Pure: a pydantic validation error in the project's own words, each message located at a key or a value."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from reconciler.load.schema import BASE_MODELS, FAMILIES, RULES, SD15, SDXL, LoraModelSpec, base_models_of
from reconciler.load.words import describe, suggest

_TAGS = ("_str", "_item")  # the tags of schema.ImageEntry's union, which pydantic puts in error locations


@dataclass
class Located:
    """A message, and where it points: the path in the document, at its key or at its value."""

    path: tuple[str | int, ...]
    message: str
    at_key: bool


def translate(model: type[BaseModel], error: Any) -> list[Located]:
    """One pydantic error → located messages in the project's own words."""
    path = tuple(p for p in error["loc"] if p not in _TAGS)  # union tags are no part of the path
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == RULES:
        return [Located(path + tuple(sub), message, at == "key") for sub, message, at in ctx["rules"]]
    if kind == "missing":
        return [Located(path, "required field missing", True)]
    if kind == "extra_forbidden":
        holder = _model_at(model, path[:-1])
        name = str(path[-1])
        hint = suggest(name, holder.model_fields) if holder is not None else ""
        return [Located(path, f"unknown field{hint}", True)]
    holder, info = _field_at(model, path)
    if kind == "literal_error" and holder is LoraModelSpec and path[-1:] == ("base_model",):
        return [Located(path, base_model_message(value), False)]
    if kind == "literal_error":
        values = _literal_values(info.annotation) if info is not None else []
        return [Located(path, _enum_message(values, value, str(path[-1]) if path else "value"), False)]
    if kind in _TYPE_WORDS:
        return [Located(path, f"expected {_TYPE_WORDS[kind]}; got {describe(value)}", False)]
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return [Located(path, _range_message(info, value), False)]
    if kind in ("string_too_short", "string_too_long"):
        bounds = _bounds(info)
        if kind == "string_too_short" and bounds.get("min_length") == 1:
            return [Located(path, "must not be empty", False)]
        span = f"{bounds.get('min_length', 0)} to {bounds['max_length']}" if "max_length" in bounds else ""
        limit = span or f"at least {bounds.get('min_length')}"
        return [Located(path, f"must be {limit} characters long; got {len(value)}", False)]
    if kind == "too_short":
        return [Located(path, f"needs at least {ctx.get('min_length')} item; got none", True)]
    if kind == "too_long":
        count = len(value) if isinstance(value, list) else ctx.get("actual_length")
        return [Located(path, f"at most {ctx.get('max_length')} items; got {count}", True)]
    if kind == "string_pattern_mismatch":
        return [
            Located(
                path,
                f"must be 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit "
                f"([a-z0-9][a-z0-9-]{{0,62}}); got {describe(value)}",
                False,
            )
        ]
    if kind == "finite_number":
        return [Located(path, f"must be a finite number; got {describe(value)}", False)]
    if kind == "image_entry":
        return [Located(path, f"{error['msg']}; got {describe(value)}", False)]
    return [Located(path, f"{error['msg']}; got {describe(value)}", False)]


def _enum_message(values: list[str], value: Any, what: str) -> str:
    got = describe(value)
    if not values:
        return f"unexpected value {got}"
    if len(values) == 1:
        return f"expected `{values[0]}`; got {got}"
    if len(values) <= 6:
        listed = ", ".join(f"`{v}`" for v in values[:-1]) + f" or `{values[-1]}`"
        return f"expected {listed}; got {got}"
    near = _near(value, values)
    if not near:  # nothing is close: say them all rather than suggest something unrelated
        return f"{got} is not one of the {len(values)} allowed values: {', '.join(f'`{v}`' for v in values)}"
    nearest = ", ".join(f"`{v}`" for v in near)
    return f"{got} is not one of the {len(values)} allowed values; nearest: {nearest} (all: `reconciler models`)"


def _near(value: Any, values: Sequence[str]) -> list[str]:
    """The allowed values close to `value`, ignoring case."""
    if not isinstance(value, str):
        return []
    lowered = {v.lower(): v for v in values}
    return [lowered[v] for v in difflib.get_close_matches(value.lower(), list(lowered), n=3, cutoff=0.6)]


def _family_of(text: str) -> str | None:
    """The family a user's word names (`sdxl`, `SD-XL`, `xl` → SDXL; `sd-1.5`, `sd15`, `v1.5` → SD 1.5), if any."""
    word = re.sub(r"[^a-z0-9]", "", text.lower())
    if "xl" in word:
        return SDXL
    if re.search(r"(sd|v|^)15|sd1$|stablediffusion1", word):
        return SD15
    return None


def base_model_message(value: Any) -> str:
    """An unknown base_model: a near miss, else Novita's models of the family it names, else all of them."""
    got = describe(value)
    family = _family_of(value) if isinstance(value, str) else None
    near = _near(value, base_models_of(family) if family else BASE_MODELS)  # never a near miss of the other family
    if near:
        return f"{got} is not one of Novita's base models; did you mean `{near[0]}`? (all: `reconciler models`)"
    if family is not None:
        names = base_models_of(family)
        return (
            f"{got} is not one of Novita's base models; for {family} use `{names[0]}` (the original) or a "
            "fine-tune of it: " + ", ".join(f"`{name}`" for name in names[1:]) + " (all: `reconciler models`)"
        )
    groups = "; ".join(f"{family}: " + ", ".join(f"`{n}`" for n in base_models_of(family)) for family in FAMILIES)
    return f"{got} is not one of Novita's base models. {groups}"


def _field_at(model: type[BaseModel], path: Sequence[str | int]) -> tuple[type[BaseModel] | None, Any]:
    """(the model holding the last field of `path`, that field's FieldInfo) or (the model at path, None)."""
    current: Any = model
    info: Any = None
    holder: type[BaseModel] | None = None
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None, None
        info = current.model_fields.get(part)
        if info is None:
            return None, None
        holder = current
        current = _inner_model(info.annotation)
    if info is None:
        return (current if isinstance(current, type) and issubclass(current, BaseModel) else None), None
    return holder, info


def _model_at(model: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class whose fields a mapping at `path` is validated against, if any."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _inner_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _literal_values(annotation: Any) -> list[str]:
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    for arg in get_args(annotation):
        if values := _literal_values(arg):
            return values
    return []


def _bounds(info: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in getattr(info, "metadata", []):
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(meta, attr, None) is not None:
                found[attr] = getattr(meta, attr)
    return found


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range_message(info: Any, value: Any) -> str:
    bounds = _bounds(info)
    low = ("≥", bounds["ge"]) if "ge" in bounds else ((">", bounds["gt"]) if "gt" in bounds else None)
    high = ("≤", bounds["le"]) if "le" in bounds else (("<", bounds["lt"]) if "lt" in bounds else None)
    got = describe(value)
    if low and high and low[0] == "≥" and high[0] == "≤":
        return f"must be between {_num(low[1])} and {_num(high[1])}; got {got}"
    parts = [f"{side[0]} {_num(side[1])}" for side in (low, high) if side is not None]
    return f"must be {' and '.join(parts)}; got {got}"


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}

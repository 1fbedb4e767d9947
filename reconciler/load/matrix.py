"""Pure: a manifest's `matrix` (sweep): which paths of a Generation or a LoraModel can be swept, and its members.

`matrix: {seed: [1, 2], loras[0].strength: [0.6, 1.0]}` expands one document into one member per combination.
Each member is a resource of its own, named `<name>[<label>=<value>,...]` with the axes sorted by label (so the
order of the axes in the YAML never changes a member's address), and its images go to its own folder
`<output>/<label>=<value>,...`. A label is the last part of the path (`strength` for `loras[0].strength`), or the
whole path where two axes would share it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AxisPath = tuple[str | int, ...]
Axes = tuple[tuple[str, Any], ...]  # (label, value) sorted by label

MAX_GENERATION_MEMBERS = 1000
MAX_MODEL_MEMBERS = 100

# kind → the scalar fields of its spec a matrix may sweep (a list index written as N)
SWEEPABLE: dict[str, tuple[str, ...]] = {
    "Generation": (
        "prompt",
        "negative_prompt",
        "model_name",
        "width",
        "height",
        "image_num",
        "steps",
        "seed",
        "guidance_scale",
        "sampler_name",
        "clip_skip",
        "sd_vae",
        "strength",
        "loras[N].strength",
    ),
    "LoraModel": (
        "base_model",
        "width",
        "height",
        *(
            f"expert_setting.{key}"
            for key in (
                "instance_prompt",
                "max_train_steps",
                "learning_rate",
                "seed",
                "lr_scheduler",
                "lr_warmup_steps",
                "train_batch_size",
                "train_text_encoder",
                "with_prior_preservation",
                "prior_loss_weight",
                "lora_r",
                "lora_alpha",
                "lora_text_encoder_r",
                "lora_text_encoder_alpha",
            )
        ),
    ),
}
LIMITS = {"Generation": MAX_GENERATION_MEMBERS, "LoraModel": MAX_MODEL_MEMBERS}

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|(\.)")
_SAFE = re.compile(r"[A-Za-z0-9._+-]{1,48}")


def parse_path(key: str) -> AxisPath | None:
    """`loras[0].strength` → ("loras", 0, "strength"); None when it is not a field path at all."""
    parts: list[str | int] = []
    pos = 0
    expect_name = True
    while pos < len(key):
        match = _TOKEN.match(key, pos)
        if match is None:
            return None
        name, index, _ = match.groups()
        if name is not None:
            if not expect_name:
                return None
            parts.append(name)
            expect_name = False
        elif index is not None:
            if expect_name or not parts:
                return None
            parts.append(int(index))
        else:
            if expect_name:
                return None
            expect_name = True
        pos = match.end()
    return tuple(parts) if parts and not expect_name else None


def pattern(path: AxisPath) -> str:
    """The SWEEPABLE spelling of a path: list indexes as N."""
    out = ""
    for part in path:
        out += "[N]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def spelled(path: AxisPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def labels(paths: Sequence[AxisPath]) -> list[str]:
    """Each axis's label: its last field name, or its whole path where that would be ambiguous."""
    short = [str(next(p for p in reversed(path) if isinstance(p, str))) for path in paths]
    return [s if short.count(s) == 1 else spelled(path) for s, path in zip(short, paths, strict=True)]


def format_value(value: Any) -> str:
    """A value as it appears in a member's address: `1`, `0.6`, `true`, `DDIM`, `"Euler a"`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    text = str(value)
    return text if _SAFE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def folder_value(value: Any) -> str:
    """A value as it appears in a member's folder name: like the address, but a string that is not a plain
    word becomes a short slug with a hash (no quotes, spaces or slashes in folder names)."""
    text = format_value(value)
    if not text.startswith('"'):
        return text
    raw = str(value)
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:24].strip("-")
    return f"{slug or 'value'}-{hashlib.sha256(raw.encode()).hexdigest()[:6]}"


def member_label(axes: Axes) -> str:
    """`seed=1,strength=0.6` (axes already sorted by label)."""
    return ",".join(f"{label}={format_value(value)}" for label, value in axes)


def member_folder(axes: Axes) -> str:
    return ",".join(f"{label}={folder_value(value)}" for label, value in axes)


def member_name(base: str, axes: Axes) -> str:
    return f"{base}[{member_label(axes)}]" if axes else base


def matrix_of(name: str) -> str | None:
    """The matrix a member name belongs to (`alice-grid` for `alice-grid[seed=1]`), None for a plain name."""
    at = name.find("[")
    return name[:at] if at > 0 and name.endswith("]") else None


def split_label(label: str) -> list[str]:
    """`seed=1,prompt="a, b"` → [`seed=1`, `prompt="a, b"`]: commas inside quoted values do not split."""
    parts: list[str] = []
    current = ""
    quoted = escaped = False
    for char in label:
        if quoted:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
            current += char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def normalise_address(addr: str) -> str:
    """A member address with its axes in the canonical (sorted) order, whatever order it was typed in."""
    kind, _, name = addr.partition("/")
    base = matrix_of(name)
    if base is None:
        return addr
    parts = split_label(name[len(base) + 1 : -1])
    ordered = sorted(parts, key=lambda part: part.partition("=")[0])
    return f"{kind}/{base}[{','.join(ordered)}]"


@dataclass(frozen=True)
class Axis:
    path: AxisPath  # below spec
    label: str
    values: tuple[Any, ...]  # validated values, in the YAML's order


def combinations(axes: Sequence[Axis]) -> list[Axes]:
    """Every combination of the axes' values, each as (label, value) sorted by label."""
    ordered = sorted(axes, key=lambda axis: axis.label)
    return [
        tuple((axis.label, value) for axis, value in zip(ordered, values, strict=True))
        for values in itertools.product(*(axis.values for axis in ordered))
    ]


def with_value(spec: dict[str, Any], path: AxisPath, value: Any) -> dict[str, Any]:
    """A copy of a raw spec with `path` set to `value` (only the containers on the path are copied)."""
    out: dict[str, Any] = dict(spec)
    holder: Any = out
    for part in path[:-1]:
        child = holder[part] if isinstance(holder, list) else holder.get(part)  # type: ignore[index]
        child = list(child) if isinstance(child, list) else dict(child) if isinstance(child, dict) else {}
        holder[part] = child
        holder = child
    holder[path[-1]] = value
    return out


def value_at(data: Any, path: AxisPath) -> Any:
    for part in path:
        data = data[part]
    return data

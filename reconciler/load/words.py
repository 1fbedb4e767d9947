"""Pure: how messages write a value (`got ...`), a field path (spec.images[2]) and a near miss (did you mean)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any


def describe(value: Any) -> str:
    """A value as a user wrote it, for `got ...` in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f'"{shown}"' if value else 'an empty string ""'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} ({value})"


def suggest(word: str, choices: Iterable[str]) -> str:
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return "; expected one of " + ", ".join(f"`{c}`" for c in options)


def reference_hint(word: str, names: Iterable[str], kind: str) -> str:
    options = sorted(names)
    if not options:
        return f"; there is no {kind} in the manifests"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    shown = ", ".join(f"`{name}`" for name in options[:5]) + (", ..." if len(options) > 5 else "")
    return f" (the {kind}s are {shown})"


def dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out

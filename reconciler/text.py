"""Pure: the small words of every message: counts with their noun, durations, sizes."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 image`, `2 images`, `0 images`; `many` for irregular plurals (`plural(2, "copy", "copies")`)."""
    return f"{n} {noun(n, word, many)}"


def noun(n: int, word: str, many: str | None = None) -> str:
    """The word alone, in the form that goes with `n`: `noun(2, "warning")` is `warnings`."""
    return word if n == 1 else (many or word + "s")


def duration(seconds: float) -> str:
    """`7s`, `5m10s`, `1h02m03s`."""
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `30m`, `1h30m`, `1.5h`, `500ms`; ValueError saying what is expected."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _DURATION_PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90s, 30m, 1h30m (a bare number is seconds)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def size(n: int) -> str:
    """`512 bytes`, `72.4 KB`, `1.3 MB` (decimal units, as file managers show)."""
    value = float(n)
    for unit in ("bytes", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"

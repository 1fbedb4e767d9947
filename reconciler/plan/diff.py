"""Pure: what the manifest owns that changed between the state's attributes and the manifests', as AttrChanges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.plan.changes import AttrChange

UNSET = "(unset)"  # the value of an attribute one side does not have


def diff_attributes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> tuple[AttrChange, ...]:
    """What the manifest owns that changed, as `path: old → new`. The only user of deepdiff.

    Image lists are summarised (count, added and removed files) instead of listed element by element;
    lists keep their order (components, loras, images are ordered).
    """
    from deepdiff import DeepDiff

    before = dict(before or {})
    after = dict(after)
    changes: list[AttrChange] = []
    b_images, a_images = before.pop("images", None), after.pop("images", None)
    if b_images is not None or a_images is not None:
        summary = _images_change(b_images or [], a_images or [])
        if summary is not None:
            changes.append(summary)
    diff = DeepDiff(before, after, view="tree", verbose_level=2)
    for report in diff.values():
        for item in report:
            path = _path(item.path(output_format="list"))
            changes.append(AttrChange(path, _value(item.t1), _value(item.t2)))
    changes.sort(key=lambda c: c.path)
    return tuple(changes)


def _path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _value(value: Any) -> Any:
    if type(value).__name__ == "NotPresent":
        return UNSET
    return value


def _images_change(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> AttrChange | None:
    key = [(i.get("sha256"), i.get("caption")) for i in before]
    new = [(i.get("sha256"), i.get("caption")) for i in after]
    if key == new:
        return None
    b_set, a_set = set(key), set(new)
    added = [i["file"] for i in after if (i.get("sha256"), i.get("caption")) not in b_set]
    removed = [i["file"] for i in before if (i.get("sha256"), i.get("caption")) not in a_set]
    detail = []
    if added:
        detail.append(f"+{len(added)} ({_some(added)})")
    if removed:
        detail.append(f"-{len(removed)} ({_some(removed)})")
    if not detail:
        detail.append("reordered")
    return AttrChange("images", f"{len(before)} images", f"{len(after)} images: {', '.join(detail)}")


def _some(files: list[str], limit: int = 3) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f", … {len(files) - limit} more" if len(files) > limit else "")


# ------------------------------------------------------------------------------------------ planner

"""Pure: what the read-only commands print from the state.

`reconciler output` gives scripts what an apply produced: each LoraModel's trained model file name (to use in
other tools) and each Generation's image paths with their sha256. `reconciler show` without a plan file shows
every resource the state holds, for a person.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.errors import UsageError
from reconciler.state.model import (
    DatasetEntry,
    ForgottenEntry,
    GenerationEntry,
    ModelEntry,
    ResourceEntry,
    State,
)
from reconciler.text import plural

OUTPUT_KINDS = ("LoraModel", "Generation")


def output_values(state: State) -> dict[str, dict[str, Any]]:
    """Address → its outputs, for every LoraModel and Generation in the state, sorted by address."""
    values: dict[str, dict[str, Any]] = {}
    for addr, entry in sorted(state.resources.items()):
        own: dict[str, Any]
        if isinstance(entry, ModelEntry):
            own = {"model_name": entry.model_name, "task_name": entry.task_name, "task_id": entry.task_id}
        elif isinstance(entry, GenerationEntry):
            own = {"output": entry.output, "images": [{"path": f.path, "sha256": f.sha256} for f in entry.files]}
        else:
            continue
        values[addr] = {"kind": entry.kind, "name": entry.name, "status": str(entry.status)} | own
        if entry.matrix:  # a member: its sweep's values
            values[addr] |= {"matrix": entry.matrix, "axes": dict(entry.axes)}
    return values


def matrix_outputs(values: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """The members of the matrix `name` (an address, Generation/alice-grid, or a bare name), by address; empty
    when `name` is no matrix's."""
    kind, _, bare = name.rpartition("/")
    return {
        addr: value
        for addr, value in values.items()
        if value.get("matrix") == bare and (not kind or addr.partition("/")[0] == kind)
    }


def find_output(values: dict[str, dict[str, Any]], name: str) -> tuple[str, dict[str, Any]]:
    """The one output named `name`: an address (LoraModel/alice-v1) or a bare name (alice-v1)."""
    if name in values:
        return name, values[name]
    matches = [addr for addr in values if addr.partition("/")[2] == name]
    if len(matches) == 1:
        return matches[0], values[matches[0]]
    if matches:
        raise UsageError(f"Invalid value for 'NAME': {name} is the name of {' and '.join(matches)}; give the address")
    matrices = sorted({f"{v['kind']}/{v['matrix']}" for v in values.values() if v.get("matrix")})
    known = ", ".join(a for a in [*values, *matrices] if "[" not in a) if values else "none: nothing was applied yet"
    raise UsageError(f"Invalid value for 'NAME': no output named {name} (the outputs are {known})")


def output_text(values: dict[str, dict[str, Any]]) -> str:
    """Every output, one per line (a generation's images one per line under it), tab-separated."""
    lines: list[str] = []
    for addr, value in values.items():
        if value["kind"] == "LoraModel":
            lines.append(f"{addr}\t{value['model_name'] or _not_yet(value)}")
        elif not value["images"]:
            lines.append(f"{addr}\t{_not_yet(value)}")
        else:
            lines += [f"{addr}\t{image['path']}\tsha256:{image['sha256']}" for image in value["images"]]
    return "".join(line + "\n" for line in lines)


def one_output_text(addr: str, value: dict[str, Any]) -> str:
    """One output as a script uses it: the model file name alone, or the image paths one per line."""
    if value["kind"] == "LoraModel":
        if not value["model_name"]:
            raise UsageError(f"{addr} has no trained model yet ({_not_yet(value)}); run reconciler apply")
        return f"{value['model_name']}\n"
    if not value["images"]:
        raise UsageError(f"{addr} has no images yet ({_not_yet(value)}); run reconciler apply")
    return "".join(image["path"] + "\n" for image in value["images"])


def output_json(values: dict[str, dict[str, Any]] | dict[str, Any]) -> str:
    return json.dumps(values, indent=2, ensure_ascii=False) + "\n"


def _not_yet(value: dict[str, Any]) -> str:
    return f"(none yet: {value['status']})"


def state_text(state: State, where: str) -> str:
    """Every resource in the state with what it owns, for a person (`reconciler show`)."""
    lines = [
        f"State {where}: serial {state.serial}, {plural(len(state.listed), 'resource')}, "
        f"{plural(len(state.images), 'image')} uploaded."
    ]
    for addr, entry in sorted(state.listed.items()):
        lines += ["", f"{addr}  ({entry.status})", *(f"  {line}" for line in _details(entry))]
    return "\n".join(lines) + "\n"


def _details(entry: ResourceEntry) -> list[str]:
    if isinstance(entry, DatasetEntry):
        return [f"images: {len(entry.images)}"]
    if isinstance(entry, ModelEntry):
        found = [
            ("dataset", entry.dataset),
            ("training", f"{entry.task_name} ({entry.task_id})" if entry.task_name else entry.task_id),
            ("model_name", entry.model_name),
            ("reason", entry.reason),
        ]
        return [f"{key}: {value}" for key, value in found if value]
    if isinstance(entry, ForgottenEntry):  # the files a forgotten generation left, until `apply --prune`
        return [f"left on disk: {f.path}  sha256:{f.sha256}" for f in entry.files]
    assert isinstance(entry, GenerationEntry)
    lines = [f"output: {entry.output}"] if entry.output else []
    if entry.models:
        lines.append("loras: " + ", ".join(f"{ours} = {name}" for ours, name in sorted(entry.models.items())))
    if entry.task_id:
        lines.append(f"task: {entry.task_id}")
    lines += [f"image: {f.path}  sha256:{f.sha256}" for f in entry.files]
    if entry.reason:
        lines.append(f"reason: {entry.reason}")
    for record in entry.history:
        lines += [f"history: {f.path}  sha256:{f.sha256}" for f in record.files]
    return lines

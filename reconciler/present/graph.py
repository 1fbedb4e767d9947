"""Pure: the dependency graph of the manifests (datasets → models → generations) as Graphviz dot or mermaid."""

from __future__ import annotations

import json
from dataclasses import dataclass

from reconciler.load.loaded import ManifestSet

_DOT_SHAPES = {"Dataset": "cylinder", "LoraModel": "box", "Generation": "ellipse"}
_MERMAID_SHAPES = {"Dataset": ("[(", ")]"), "LoraModel": ("[", "]"), "Generation": ("([", "])")}


@dataclass(frozen=True)
class Graph:
    nodes: tuple[str, ...]  # addresses, datasets first, then models, then generations, each sorted by name
    edges: tuple[tuple[str, str], ...]  # (what is needed, what needs it), sorted


def dependency_graph(manifests: ManifestSet) -> Graph:
    """Each LoraModel needs its Dataset; each Generation needs the LoraModels of these manifests it uses."""
    nodes = [f"Dataset/{name}" for name in sorted(manifests.datasets)]
    nodes += [f"LoraModel/{name}" for name in sorted(manifests.models)]
    nodes += [f"Generation/{name}" for name in sorted(manifests.generations)]
    edges = {(f"Dataset/{m.spec.dataset}", f"LoraModel/{name}") for name, m in manifests.models.items()}
    for name, gen in manifests.generations.items():
        edges |= {(f"LoraModel/{ref.model}", f"Generation/{name}") for ref in gen.spec.loras if ref.model}
    order = {addr: i for i, addr in enumerate(nodes)}
    return Graph(tuple(nodes), tuple(sorted(edges, key=lambda e: (order[e[0]], order[e[1]]))))


def render_dot(graph: Graph) -> str:
    lines = ["digraph reconciler {", "  rankdir=LR;"]
    for addr in graph.nodes:
        kind, _, name = addr.partition("/")
        label = json.dumps(kind + "\n" + name)
        lines.append(f"  {json.dumps(addr)} [label={label}, shape={_DOT_SHAPES[kind]}];")
    lines += [f"  {json.dumps(a)} -> {json.dumps(b)};" for a, b in graph.edges]
    return "\n".join([*lines, "}"]) + "\n"


def render_mermaid(graph: Graph) -> str:
    """A mermaid flowchart, ready for a ```mermaid block in a pull-request comment."""
    ids = {addr: f"n{i}" for i, addr in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for addr in graph.nodes:
        kind = addr.partition("/")[0]
        left, right = _MERMAID_SHAPES[kind]
        lines.append(f'  {ids[addr]}{left}"{addr}"{right}')
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in graph.edges]
    return "\n".join(lines) + "\n"

"""YAML text → plain Python documents with the line:col of every key and value, and duplicate keys found."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:  # the C composer is several times faster; the pure-Python one gives the same nodes
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_RESOLVED: dict[tuple[type, str | None, Any], str] = {}  # (node kind, text, implicit) → tag


class _Loader(_BaseLoader):
    """The safe loader with its tag resolution remembered: a manifest set repeats the same few scalars
    (`reconciler/v1`, `512`, `subject`) thousands of times, and resolving one runs a regex per candidate tag."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        key = (kind, value, implicit)  # value: a scalar's text, None for a sequence or mapping
        tag = _RESOLVED.get(key)
        if tag is None:
            if len(_RESOLVED) > 100_000:  # bounded: one huge manifest set does not keep growing it
                _RESOLVED.clear()
            tag = _RESOLVED[key] = str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
        return tag


Path_ = tuple[str | int, ...]  # a path into a document: mapping keys and list indexes

_SCALAR_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:timestamp",
}
_MAP_TAGS = {"tag:yaml.org,2002:map"}
_SEQ_TAGS = {"tag:yaml.org,2002:seq"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_DOCUMENT_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec"})  # a repeat means a missing `---`
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Pos:
    """A 1-based line and column."""

    line: int
    col: int


class Mark(Protocol):
    """A 0-based place in the text, as the YAML parser marks every node (turned into a Pos only when asked)."""

    line: int
    column: int


@dataclass
class Document:
    """One YAML document: its data, where it starts, and where each path's key and value are.

    `locate`, when given, parses the document again for its positions, the first time one is asked for: a
    document read from the manifest cache has its data and start only (positions are needed for problems)."""

    data: Any
    start: Pos
    keys: dict[Path_, Mark] = field(default_factory=dict)  # where the key (or list item) of a path is
    values: dict[Path_, Mark] = field(default_factory=dict)  # where the value of a path starts
    locate: Callable[[], Document] | None = field(default=None, repr=False, compare=False)

    def _located(self) -> None:
        if self.locate is not None:
            parsed, self.locate = self.locate(), None
            self.keys, self.values = parsed.keys, parsed.values

    def key_pos(self, path: Path_) -> Pos:
        """Where the key of `path` is; else the nearest ancestor's."""
        self._located()
        while path:
            if path in self.keys:
                return _at(self.keys[path])
            path = path[:-1]
        return self.start

    def value_pos(self, path: Path_) -> Pos:
        """Where the value of `path` is; else the key of the nearest ancestor that exists."""
        self._located()
        if path in self.values:
            return _at(self.values[path])
        return self.key_pos(path[:-1]) if path else self.start


@dataclass(frozen=True, eq=False)
class YamlProblem:
    line: int
    col: int
    message: str
    fatal: bool = False  # the rest of the file could not be read
    document: Document | None = None  # the document it is in, when known
    path: Path_ | None = None  # the path in that document it is about, when known


def _at(mark: Mark) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


def _pos(node: Node) -> Pos:
    return _at(node.start_mark)


class _Builder:
    """Turns a composed node tree into dicts, lists and scalars, recording positions and duplicate keys."""

    def __init__(self, doc: Document, problems: list[YamlProblem]) -> None:
        self.doc = doc
        self.problems = problems
        self.scalars = SafeConstructor()
        self.active: set[int] = set()  # nodes on the current path (an alias cycle would recurse forever)
        self.done: dict[int, Any] = {}  # nodes reached again through an alias share one object
        self.split_reported = False  # a repeated apiVersion/kind/metadata/spec (a missing `---`) was reported

    def build(self, node: Node, path: Path_) -> Any:
        self.doc.values.setdefault(path, node.start_mark)
        if isinstance(node, ScalarNode):  # no cycle can pass through a scalar; an alias to one rebuilds it
            return self._scalar(path, node)
        ident = id(node)
        if ident in self.done:
            return self.done[ident]
        if ident in self.active:
            self._problem(path, node, "an alias refers to a node that contains it (recursive structure)")
            return None
        self.active.add(ident)
        result: Any
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(path, node, _SEQ_TAGS)
                result = []
                for index, item in enumerate(node.value):
                    self.doc.keys.setdefault((*path, index), item.start_mark)
                    result.append(self.build(item, (*path, index)))
            else:
                assert isinstance(node, MappingNode)
                self._check_tag(path, node, _MAP_TAGS)
                result = self._mapping(node, path)
        finally:
            self.active.discard(ident)
        self.done[ident] = result
        return result

    def _mapping(self, node: MappingNode, path: Path_, merged: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Mark] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(path, key_node, "a key must be a plain string, not a list or mapping")
                continue
            key = str(key_node.value)
            here = key_node.start_mark
            if key in first_seen:
                first = first_seen[key]
                if not path and key in _DOCUMENT_KEYS:
                    if self.split_reported:
                        continue  # one missing `---` is one problem, however many keys it repeats
                    self.split_reported = True
                    fix = "a second document starts here? put a line `---` before it"
                else:
                    fix = "remove one of them"
                self._problem((*path, key), key_node, f"duplicate key (first given at line {first.line + 1}); {fix}")
                continue
            first_seen[key] = here
            if merged:
                self.doc.keys.setdefault((*path, key), here)
            else:
                self.doc.keys[(*path, key)] = here
            result[key] = self.build(value_node, (*path, key))
        for merge in merges:  # `<<: *base` or `<<: [*a, *b]`: keys given here win, earlier merges win
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self._problem(path, source, "`<<` (merge) needs a mapping or a list of mappings")
                    continue
                extra = self._mapping(source, path, merged=True)
                for key, value in extra.items():
                    result.setdefault(key, value)
        return result

    def _scalar(self, path: Path_, node: ScalarNode) -> Any:
        if node.tag == _STR_TAG:  # most scalars: the text as written, no constructor needed
            return node.value
        if node.tag not in _SCALAR_TAGS:
            if node.tag.startswith("tag:yaml.org,2002:") and node.tag in self.scalars.yaml_constructors:
                pass  # e.g. !!binary: construct it; validation will reject the type
            else:
                self._problem(path, node, f"unsupported YAML tag `{node.tag}`")
                return node.value
        try:
            return self.scalars.construct_object(node, deep=True)
        except (ConstructorError, ValueError, TypeError, OverflowError) as exc:
            self._problem(path, node, f"cannot read this {node.tag.rsplit(':', 1)[-1]}: {exc}")
            return node.value

    def _check_tag(self, path: Path_, node: Node, allowed: set[str]) -> None:
        if node.tag not in allowed:
            self._problem(path, node, f"unsupported YAML tag `{node.tag}`")

    def _problem(self, path: Path_, node: Node, message: str) -> None:
        pos = _pos(node)
        self.problems.append(YamlProblem(pos.line, pos.col, message, document=self.doc, path=path))


def _mark_problem(exc: yaml.MarkedYAMLError, text: str) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "; ".join(parts) if parts else "invalid YAML"
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    opened = exc.context_mark
    if opened is not None and opened.line + 1 < line and _never_closed(exc):
        # PyYAML notices an unclosed quote or bracket where the file ends or the next line starts: point at the opener
        line, col = opened.line + 1, opened.column + 1
        here = lines[line - 1] if 0 < line <= len(lines) else ""
        message += f" (the {_opener(here, col)} opened here is never closed)"
    elif "\t" in here[:col]:
        message += " (a tab: YAML indents with spaces only)"
    elif "mapping values are not allowed" in (exc.problem or "") and (deeper := _too_deep(lines, line)):
        message += f"; {deeper}"
    elif hint := _syntax_hint(exc.problem or "", here, col):
        message += f"; {hint}"
    return YamlProblem(line, col, f"YAML syntax error: {message}", fatal=True)


def _too_deep(lines: list[str], line: int) -> str:
    """A `key: value` line indented deeper than the `key: value` above it (a value already given): the likely
    mistake is the indentation, not a value to quote."""
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    above = next((t for t in reversed(lines[: line - 1]) if t.strip() and not t.lstrip().startswith("#")), "")
    key = re.match(r"(\s*)([\w.-]+):\s+\S", here)
    parent = re.match(r"(\s*(?:- )?)([\w.-]+):\s+[^\s#]", above)
    if not key or not parent or len(key.group(1)) <= len(parent.group(1)):
        return ""
    return (
        f"`{key.group(2)}:` is indented deeper than `{parent.group(2)}:` above it, which already has a value; "
        f"indent it like `{parent.group(2)}:` (the keys of one mapping start in the same column)"
    )


def _never_closed(exc: yaml.MarkedYAMLError) -> bool:
    context = exc.context or ""
    return "quoted scalar" in context or "flow" in context


def _opener(line: str, col: int) -> str:
    char = line[col - 1 : col]
    return {'"': "quote", "'": "quote", "[": "`[`", "{": "`{`"}.get(char, "bracket or quote")


def _syntax_hint(problem: str, line: str, col: int) -> str:
    """The likely fix for a syntax error on `line`, in the user's own words (a quoted value, mostly)."""
    key, sep, value = line.strip().partition(": ")
    key = key.removeprefix("- ")
    value = value.strip()
    quoted = (
        f"{key}: {json.dumps(value, ensure_ascii=False)}" if sep and value and re.fullmatch(r"[\w.-]+", key) else ""
    )
    if "mapping values are not allowed" in problem:
        return "a value that contains `: ` must be quoted" + (f", e.g. {quoted}" if quoted else "")
    star = line.rfind("*", 0, col)
    if "expected alphabetic or numeric character" in problem and star >= 0:
        token = re.match(r"[^\s,\]}]+", line[star:])
        example = f', e.g. "{token.group()}"' if token else ""
        return f"a value starting with `*` is read as an alias; quote it{example}"
    start = line[col - 1 : col]
    if "cannot start any token" in problem and start in "@`%":
        return f"a value cannot start with `{start}`; quote it" + (f", e.g. {quoted}" if quoted else "")
    if "did not find expected key" in problem and value[:1] in ("{", "["):
        return f"a value starting with `{value[0]}` is read as a mapping or list; quote it, e.g. {quoted}"
    if "did not find expected key" in problem:
        return "check the indentation: the keys of one mapping start in the same column"
    return ""


def parse_documents(text: str) -> tuple[list[Document], list[YamlProblem]]:
    """Every non-empty document of `text` and the problems found. Stops at the first syntax error,
    keeping the documents before it. A document that is empty or only comments is skipped."""
    documents: list[Document] = []
    problems: list[YamlProblem] = []
    nodes: Iterator[Node | None] = yaml.compose_all(text, Loader=_Loader)
    try:
        for node in nodes:
            if node is None or (
                isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null" and node.value == ""
            ):
                continue
            doc = Document(data=None, start=_pos(node))
            try:
                doc.data = _Builder(doc, problems).build(node, ())
            except RecursionError:
                problems.append(YamlProblem(doc.start.line, doc.start.col, "nesting too deep"))
                continue
            documents.append(doc)
    except yaml.MarkedYAMLError as exc:
        problems.append(_mark_problem(exc, text))
    except yaml.YAMLError as exc:  # e.g. a reader error on a control character
        problems.append(YamlProblem(1, 1, f"YAML error: {exc}", fatal=True))
    except RecursionError:
        problems.append(YamlProblem(1, 1, "YAML nesting too deep", fatal=True))
    unique = {(p.line, p.col, p.message): p for p in problems}  # a node reached through aliases reports once
    return documents, [unique[key] for key in sorted(unique)]

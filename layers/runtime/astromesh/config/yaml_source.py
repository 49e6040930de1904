"""YAML parsing that keeps where every value came from.

pyyaml's ``safe_load`` loses line numbers and silently keeps the last of two duplicate keys.
Here a document is composed into nodes and converted by hand, recording for each field path
the position of its key and of its value, reporting duplicate keys, and applying ``${VAR}``
interpolation to string scalars (so line numbers survive interpolation).

Every string (keys too) passes the text boundary (:mod:`astromesh.text_boundary`): one that
is not valid text (a ``"\\uD800"`` or ``"\\0"`` escape, an interpolated variable holding
undecodable bytes) is a problem at its field, or, for documents read back from a store,
repaired to U+FFFD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from astromesh.config.interpolate import InterpolationError, interpolate
from astromesh.config.limits import MAX_DOCUMENT_VALUES, MAX_NESTING_DEPTH
from astromesh.text_boundary import (
    describe,
    first_invalid,
    join_surrogate_pairs,
    problem_message,
    repair,
)

PathPart = str | int
FieldPath = tuple[PathPart, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TOO_DEEP = f"nesting deeper than {MAX_NESTING_DEPTH} levels"
_TOO_LARGE = (
    f"document too large: over {MAX_DOCUMENT_VALUES} values (counting each use of an alias)"
)


class _TooDeep(yaml.composer.ComposerError):
    """A collection nested deeper than the limit; ``path`` is where it starts."""

    def __init__(self, path: FieldPath, mark: yaml.Mark) -> None:
        super().__init__(None, None, _TOO_DEEP, mark)
        self.path = path


class _Loader(yaml.SafeLoader):
    """SafeLoader without timestamp resolution (``version: 2024-01-01`` stays a string) and
    with a nesting limit: pyyaml composes recursively, so ``[[[[...`` ten thousand deep would
    end in a ``RecursionError`` (a 500 on ``POST /v1/agents``) instead of an issue."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[PathPart | None] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # ``index`` is the item's position in a sequence, the key node of a mapping value, or
        # None for a mapping key and the document itself.
        self._path.append(index.value if isinstance(index, ScalarNode) else index)
        try:
            if len(self._path) > MAX_NESTING_DEPTH and self.check_event(
                yaml.SequenceStartEvent, yaml.MappingStartEvent
            ):
                path = tuple(part for part in self._path if part is not None)
                raise _TooDeep(path, self.peek_event().start_mark)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._path.pop()


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


if yaml.__with_libyaml__:

    class _CLoader(yaml.CSafeLoader):  # type: ignore[misc,name-defined]
        """libyaml's composer with :class:`_Loader`'s resolvers, for text already checked to
        nest within the limit (libyaml composes recursively in C)."""

    _CLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


@dataclass(frozen=True, slots=True)
class Position:
    """A 1-based line and column in the source text."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """A problem found while reading (not validating) a document."""

    path: FieldPath
    position: Position | None
    message: str


@dataclass
class YamlDocument:
    """One parsed document: plain Python data plus where each field path sits in the file."""

    data: Any
    start: Position
    key_positions: dict[FieldPath, Position] = field(default_factory=dict)
    value_positions: dict[FieldPath, Position] = field(default_factory=dict)
    scalar_paths: set[FieldPath] = field(default_factory=set)
    problems: list[SourceProblem] = field(default_factory=list)

    def position_of(self, path: FieldPath, *, prefer_key: bool = False) -> Position:
        """Where to point a message about ``path``.

        Scalars point at the value; mappings and lists at their key (their value starts on the
        next line); a path that does not exist (a missing field) at its nearest existing parent.
        """
        probe = path
        while probe:
            if probe in self.value_positions:
                key = self.key_positions.get(probe)
                if key is not None and (prefer_key or probe not in self.scalar_paths):
                    return key
                return self.value_positions[probe]
            probe = probe[:-1]
        return self.start


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """The text is not YAML at all (or is too deep to read); ``position`` is where the parser
    gave up and ``path`` the field it was in, when known."""

    message: str
    position: Position | None
    path: FieldPath = ()


def _position(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def parse_documents(
    text: str, env: Mapping[str, str], *, repair_text: bool = False
) -> list[YamlDocument] | ParseFailure:
    """Parse every ``---``-separated document of ``text``; empty documents are dropped.

    ``repair_text``: replace invalid text (raw, escaped or interpolated) with U+FFFD instead
    of reporting it, for documents whose writer cannot be told (read back from a store).
    """
    if repair_text:
        text = repair(text)
    checked = _libyaml_check(text)
    if isinstance(checked, ParseFailure):
        return checked
    if checked:
        # Nesting is known to be within the limit: compose in C, ten times faster than pyyaml
        # (2 s for 240 kB of `{}` in Python, on the event loop of POST /v1/agents).
        try:
            nodes = [node for node in yaml.compose_all(text, Loader=_CLoader) if not _empty(node)]
        except yaml.YAMLError:
            pass  # pyyaml below words the problem (and our tests) its own way
        else:
            return [_Converter(env, repair_text).document(node) for node in nodes]
    try:
        nodes = [node for node in yaml.compose_all(text, Loader=_Loader) if not _empty(node)]
    except _TooDeep as exc:
        mark = exc.problem_mark
        return ParseFailure(_TOO_DEEP, _position(mark) if mark else None, exc.path)
    except yaml.MarkedYAMLError as exc:
        return _syntax_failure(exc)
    except yaml.YAMLError as exc:
        return ParseFailure(f"invalid YAML: {exc}", None)
    return [_Converter(env, repair_text).document(node) for node in nodes]


@dataclass
class _Frame:
    """An open collection while reading events: the next item's index or key."""

    part: PathPart | None
    is_mapping: bool
    index: int = 0
    key: PathPart | None = None
    expecting_key: bool = True

    def child(self, event: yaml.Event) -> PathPart | None:
        """The path part of the node ``event`` starts (None for a mapping key)."""
        if not self.is_mapping:
            self.index += 1
            return self.index - 1
        self.expecting_key = not self.expecting_key
        if not self.expecting_key:  # this node is a key
            self.key = event.value if isinstance(event, yaml.ScalarEvent) else None
            return None
        return self.key


def _libyaml_check(text: str) -> ParseFailure | bool:
    """Read ``text``'s events with libyaml: a failure when it nests too deeply, else whether
    libyaml read it all (so composing it in C cannot recurse past the limit).

    pyyaml's pure-Python scanner slows down with every open flow collection (``[[[[...``: half
    a second before composition even reaches the limit); libyaml reads the same events in
    milliseconds. Without libyaml, or when libyaml cannot parse the text (pyyaml reports that
    better), composition's own limit applies.
    """
    if not yaml.__with_libyaml__:
        return False
    frames: list[_Frame] = []
    values = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                values = 0
            elif isinstance(event, yaml.NodeEvent):
                # Every node is at least one value once converted: stop reading (and never
                # compose) a document that is too large before aliases even expand it.
                values += 1
                if values > MAX_DOCUMENT_VALUES:
                    path = tuple(f.part for f in frames[1:] if f.part is not None)
                    return ParseFailure(_TOO_LARGE, _position(event.start_mark), path)
                part = frames[-1].child(event) if frames else None
                if isinstance(event, yaml.CollectionStartEvent):
                    frames.append(_Frame(part, isinstance(event, yaml.MappingStartEvent)))
                    if len(frames) > MAX_NESTING_DEPTH:
                        path = tuple(f.part for f in frames[1:] if f.part is not None)
                        return ParseFailure(_TOO_DEEP, _position(event.start_mark), path)
            elif isinstance(event, yaml.CollectionEndEvent):
                frames.pop()
    except yaml.YAMLError:
        return False
    return True


def _empty(node: Node | None) -> bool:
    """A document with no content (``---`` followed by nothing, or only comments)."""
    return node is None or (isinstance(node, ScalarNode) and node.value == "" and not node.style)


def _syntax_failure(exc: yaml.MarkedYAMLError) -> ParseFailure:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "syntax error"
    message = f"invalid YAML: {problem}"
    if exc.context:
        message += f" ({exc.context}"
        if exc.context_mark is not None and exc.context_mark is not mark:
            message += f" at line {exc.context_mark.line + 1}"
        message += ")"
    if "'\\t'" in problem:
        message += "; YAML does not allow tabs for indentation, use spaces"
    return ParseFailure(message, _position(mark) if mark is not None else None)


class _Converter:
    """Turns one composed node tree into Python data, recording positions and problems."""

    def __init__(self, env: Mapping[str, str], repair_text: bool = False) -> None:
        self._env = env
        self._repair_text = repair_text
        self._scalars = _Loader("")
        self._count = 0
        self._too_deep = False
        self._active: set[int] = set()
        self._doc: YamlDocument | None = None

    def document(self, root: Node) -> YamlDocument:
        self._doc = YamlDocument(data=None, start=_position(root.start_mark))
        self._doc.value_positions[()] = self._doc.start
        self._doc.data = self._convert(root, ())
        return self._doc

    def _problem(self, path: FieldPath, node: Node | None, message: str) -> None:
        assert self._doc is not None
        position = _position(node.start_mark) if node is not None else None
        self._doc.problems.append(SourceProblem(path, position, message))

    def _convert(self, node: Node, path: FieldPath) -> Any:
        assert self._doc is not None
        self._count += 1
        if self._count > MAX_DOCUMENT_VALUES:
            if self._count == MAX_DOCUMENT_VALUES + 1:
                self._problem(path, node, _TOO_LARGE)
            return None
        if len(path) > MAX_NESTING_DEPTH:
            # Composition caps the text's nesting; aliases can still nest one deep collection
            # inside another.
            if not self._too_deep:
                self._problem(path[:MAX_NESTING_DEPTH], node, _TOO_DEEP)
                self._too_deep = True
            return None
        if id(node) in self._active:
            self._problem(path, node, "recursive alias: a value cannot contain itself")
            return None
        self._doc.value_positions.setdefault(path, _position(node.start_mark))
        if isinstance(node, ScalarNode):
            self._doc.scalar_paths.add(path)
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    self._problem(path, node, f"unsupported YAML tag '{node.tag}'")
                return [self._convert(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))
        self._problem(path, node, "unsupported YAML node")
        return None

    def _text(self, value: str, path: FieldPath, node: Node, *, key: bool = False) -> str:
        """``value`` if it is valid text; else repaired, or reported as a problem."""
        value = join_surrogate_pairs(value)
        index = first_invalid(value)
        if index is None:
            return value
        if self._repair_text:
            return repair(value)
        message = problem_message(describe(value[index]), index, of="key" if key else "value")
        self._problem(path, node, message)
        return repair(value)

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        if node.tag == _STR_TAG:
            try:
                return self._text(interpolate(node.value, self._env), path, node)
            except InterpolationError as exc:
                self._problem(path, node, exc.message)
                return self._text(node.value, path, node)
        try:
            return self._scalars.construct_object(node, deep=True)
        except yaml.YAMLError:
            self._problem(path, node, f"unsupported YAML tag '{node.tag}'")
            return node.value

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        assert self._doc is not None
        if node.tag != _MAP_TAG:
            self._problem(path, node, f"unsupported YAML tag '{node.tag}'")
        # Merged keys first, so explicit keys override both their values and their positions.
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, result)
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(path, key_node, "a mapping key must be a plain value")
                continue
            # The key's text, not its YAML type: `on:` stays "on", `200:` stays "200".
            key = self._text(key_node.value, (*path, repair(key_node.value)), key_node, key=True)
            if key in first_seen:
                first = first_seen[key].start_mark.line + 1
                self._problem(
                    (*path, key),
                    key_node,
                    f"duplicate key '{key}' (first defined at line {first}); "
                    "YAML would silently keep only the last one",
                )
                # The last value wins, as in pyyaml, so validation of the rest still runs.
            first_seen[key] = key_node
            child = (*path, key)
            self._doc.key_positions[child] = _position(key_node.start_mark)
            self._doc.value_positions.pop(child, None)
            self._doc.scalar_paths.discard(child)
            result[key] = self._convert(value_node, child)
        return result

    def _merge(self, value_node: Node, path: FieldPath, into: dict[str, Any]) -> None:
        """Apply a YAML merge key (``<<: *base``); earlier sources win, explicit keys win."""
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self._problem(path, source, "a merge key (<<) must refer to a mapping")
                continue
            if id(source) in self._active:
                self._problem(path, source, "recursive alias: a value cannot contain itself")
                continue
            converted = self._mapping(source, path)
            for key, value in converted.items():
                into.setdefault(key, value)

"""Text in, text out, always valid: the one rule for every string that crosses a boundary.

A string is *valid text* when it is a sequence of Unicode scalar values other than NUL:
every code point in it can then be stored and sent anywhere the runtime stores or sends
text. Two kinds of code points cannot:

- lone surrogates (U+D800 to U+DFFF): Python strings may hold them (a JSON ``"\\ud800"``
  escape, bytes decoded with ``surrogateescape``), but they have no UTF-8 encoding, so the
  first store, log line or HTTP body that encodes the string fails;
- NUL (U+0000): PostgreSQL refuses it in ``text`` and ``jsonb``, and C libraries cut there.

Bytes that are not UTF-8 are not text either. Everything else passes, noncharacters
(U+FFFE, U+FFFF...) included: they are valid Unicode, and every store takes them.

The rule, applied once at each boundary rather than wherever a failure would surface:

- where the sender can be told (the HTTP API, the WebSocket, a posted agent document), such
  text is refused: :class:`InvalidText`, ``422 invalid_text``, naming each field;
- where nobody can be told (a WhatsApp or Telegram message, a model's output, a tool's
  result, anything read back from a store), each offending code point is replaced by U+FFFD
  (:func:`repair`, :func:`repair_value`), so the message is still answered and the run still
  stored.

Everything here is pure (no I/O, no framework), so the API middleware, the messaging
adapters, the model and tool types and the stores share it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticSerializationError

from astromesh.errors import ValidationFailed

REPLACEMENT = "\ufffd"
"""What an invalid code point becomes where text is repaired."""

INVALID_TEXT = "invalid text"
"""How every problem found here begins (config issues are recognised by it)."""

RULE = "text must be Unicode without lone surrogates or NUL"

PATTERN = "^[^\\u0000\\uD800-\\uDFFF]*$"
"""The rule as a JSON Schema ``pattern`` (``/openapi.json`` puts it on every string)."""

_INVALID = re.compile("[\x00\ud800-\udfff]")
_SUSPECT_ESCAPE = re.compile(
    # A JSON escape that may decode to an invalid code point (surrogate pairs too: a pair is
    # valid, and the parse below tells which).
    r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})"
)
MAX_DEPTH = 64
"""How deep a caller's free-form JSON (a run's ``context``, a WebSocket message) may nest,
as agent documents may: the stores serialise runs with pydantic, which gives up past 255
levels, and Python's own JSON stops near 1,000, both far beyond any real context."""
_MAX_ISSUES = 20
"""Issues reported for one value at most: enough to fix a body, bounded for a hostile one."""


@dataclass(frozen=True, slots=True)
class TextIssue:
    """One invalid string: where it is (``context.notes[2]``, ``query.tenant``; empty for
    a whole body) and what is wrong; ``line``/``column`` place it in a posted document."""

    field: str
    message: str
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry of a 422 body's ``fields`` (the shape ``validation_error`` uses)."""
        entry: dict[str, Any] = {
            "field": self.field,
            "message": self.message,
            "type": "invalid_text",
        }
        if self.line is not None:
            entry["line"] = self.line
            entry["column"] = self.column
        return entry


def problem_message(problem: str, index: int, *, of: str = "") -> str:
    """``invalid text: <problem> at position <index>[ of the <of>]; <the rule>``."""
    where = f" of the {of}" if of else ""
    return f"{INVALID_TEXT}: {problem} at position {index}{where}; {RULE}"


def _issue(
    field: str, problem: str, index: int, line: int | None = None, column: int | None = None
) -> TextIssue:
    return TextIssue(field, problem_message(problem, index), line, column)


class InvalidText(ValidationFailed):
    """Text from a caller who can be told is not valid text (``422 invalid_text``)."""

    code = "invalid_text"
    status = 422

    def __init__(self, issues: list[TextIssue]) -> None:
        super().__init__(summarize(issues))
        self.issues = issues


def summarize(issues: list[TextIssue]) -> str:
    """One line for an error message: the first issue, and how many more there are."""
    first = issues[0]
    where = f"{first.field}: " if first.field else ""
    if first.line is not None:
        where = f"line {first.line}, column {first.column}: {where}"
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{where}{first.message}{more}"


class TooDeep(ValidationFailed):
    """Free-form JSON from a caller nests deeper than :data:`MAX_DEPTH` (``422 too_deep``)."""

    code = "too_deep"
    status = 422

    def __init__(self, field: str, limit: int) -> None:
        super().__init__(f"{field or '(body)'}: nested deeper than {limit} levels")
        self.field = field


def first_invalid(text: str) -> int | None:
    """Index of the first invalid code point of ``text``, or ``None`` when it is valid.

    Checks in C what rules most text out (ASCII; UTF-8 encodable) before the regular
    expression, which costs ~40 ms a megabyte.
    """
    if text.isascii():
        index = text.find("\x00")
        return None if index < 0 else index
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        index = text.find("\x00")
        return None if index < 0 else index
    match = _INVALID.search(text)
    return match.start() if match else None


def is_valid(text: str) -> bool:
    return first_invalid(text) is None


def describe(char: str, *, undecodable: bool = False) -> str:
    """What is wrong with one invalid code point, for people.

    ``undecodable``: the text was decoded from bytes with ``surrogateescape``, so U+DC80 to
    U+DCFF stand for bytes that were not UTF-8.
    """
    point = ord(char)
    if point == 0:
        return "NUL (U+0000)"
    if undecodable and 0xDC80 <= point <= 0xDCFF:
        return f"a byte that is not UTF-8 (0x{point - 0xDC00:02X})"
    return f"lone surrogate U+{point:04X}"


_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def join_surrogate_pairs(text: str) -> str:
    """``text`` with each high surrogate followed by a low one joined into the character the
    pair encodes, as JSON means ``"\\ud83d\\ude00"``: pyyaml decodes each ``\\u`` escape on
    its own, so a JSON document read as YAML would otherwise hold two lone surrogates where
    its author wrote one emoji. Lone surrogates stay (and are invalid)."""
    if text.isascii() or _SURROGATE_PAIR.search(text) is None:
        return text
    return _SURROGATE_PAIR.sub(
        lambda pair: pair.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text
    )


def repair(text: str) -> str:
    """``text`` with every invalid code point replaced by U+FFFD (``text`` itself if valid)."""
    if first_invalid(text) is None:
        return text
    return _INVALID.sub(REPLACEMENT, text)


def repair_value(value: Any) -> Any:
    """JSON-like data (strings, dicts, lists, tuples, scalars) with every string repaired,
    dict keys included; ``value`` itself when nothing needs repair, else a copy (tuples
    become lists). Iterative, so data nested as deep as a parser allows cannot overflow the
    stack; two keys that repair to the same text keep the last value."""
    if isinstance(value, str):
        return repair(value)
    if not isinstance(value, dict | list | tuple) or not _holds_invalid(value):
        return value
    root = _copied(value)
    pending: list[Any] = [root]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            items = list(node.items())
            node.clear()
            for key, item in items:
                copy = _copied(item)
                node[repair(key) if isinstance(key, str) else key] = copy
                if isinstance(copy, dict | list):
                    pending.append(copy)
        else:
            for index, item in enumerate(node):
                copy = _copied(item)
                node[index] = copy
                if isinstance(copy, dict | list):
                    pending.append(copy)
    return root


def _copied(value: Any) -> Any:
    if isinstance(value, str):
        return repair(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    return value


RepairedStr = Annotated[str, AfterValidator(repair)]
"""A model field whose text is repaired as the model is built (model output, tool results)."""
Repaired = AfterValidator(repair_value)
"""Annotate any JSON-like field with it (``Annotated[dict[str, Any], Repaired]``) to repair
every string in it as the model is built."""


def dump_json(model: BaseModel, dump: Callable[..., str], /, **kwargs: Any) -> str:
    """``dump(**kwargs)`` (a model's own ``model_dump_json``), or, when a field was given
    invalid text after the model was built (pydantic cannot encode it), the JSON of the same
    model with that text repaired: what the stores write is always valid text. The happy
    path costs nothing extra."""
    try:
        return dump(**kwargs)
    except (PydanticSerializationError, UnicodeEncodeError):
        dumped = model.model_dump(mode="python", round_trip=True)
        data = repair_value(dumped)
        if data is dumped:
            raise  # nothing to repair: the failure is not about text
        # The base method: this one again would loop if the repaired model failed too.
        return BaseModel.model_dump_json(type(model).model_validate(data), **kwargs)


def find_invalid(
    value: Any, *, field: str = "", limit: int = _MAX_ISSUES, undecodable: bool = False
) -> list[TextIssue]:
    """Every invalid string in JSON-like ``value`` (keys included), at most ``limit``,
    each with its path from ``field`` (``a.b[0]``, the way 422 bodies name fields)."""
    issues: list[TextIssue] = []
    for path, text in _strings(value, field):
        index = first_invalid(text)
        if index is not None:
            problem = describe(text[index], undecodable=undecodable)
            issues.append(_issue(path, problem, index))
            if len(issues) >= limit:
                break
    return issues


def _strings(value: Any, field: str) -> Iterator[tuple[str, str]]:
    """``(path, string)`` of every string in ``value`` in document order, without recursion;
    an invalid key is reported at the path it names, suffixed ``(key)``, before its value."""
    pending: list[tuple[str, Any, Any]] = [(field, value, None)]
    seen: set[int] = set()
    while pending:
        path, node, key = pending.pop()
        if isinstance(key, str) and not is_valid(key):
            yield f"{path} (key)", key
        if isinstance(node, str):
            yield path, node
        elif isinstance(node, dict | list | tuple):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, dict):
                children = [(_child(path, k), item, k) for k, item in node.items()]
            else:
                children = [(f"{path}[{i}]", item, None) for i, item in enumerate(node)]
            pending.extend(reversed(children))


def _holds_invalid(value: Any) -> bool:
    """Whether any string in JSON-like ``value`` (keys included) is invalid: what
    ``find_invalid(value, limit=1)`` answers, without building a path for every element (the
    usual answer, for every model's tool call and every tool's result, is no)."""
    pending: list[Any] = [value]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if first_invalid(node) is not None:
                return True
        elif isinstance(node, dict | list | tuple):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, dict):
                for key, item in node.items():
                    if isinstance(key, str) and first_invalid(key) is not None:
                        return True
                    pending.append(item)
            else:
                pending.extend(node)
    return False


def _child(path: str, key: Any) -> str:
    name = repair(key) if isinstance(key, str) else str(key)
    return f"{path}.{name}" if path else name


def depth(value: Any) -> int:
    """How many lists and dicts deep ``value`` nests (0 for a scalar), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list | tuple):
            deepest = max(deepest, level + 1)
            pending.extend((item, level + 1) for item in node if isinstance(item, dict | list))
    return deepest


def _shallow(value: Any) -> Any:
    if depth(value) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels (too_deep)")
    return value


Shallow = AfterValidator(_shallow)
"""Annotate a free-form field of a request body with it (``Annotated[dict[str, Any],
Shallow]``): deeper than :data:`MAX_DEPTH` is a 422 naming the field."""


def require_valid(value: Any, *, field: str = "", max_depth: int | None = MAX_DEPTH) -> None:
    """Refuse ``value`` unless every string in it is valid text (and, with ``max_depth``,
    it nests no deeper than that).

    Raises:
        TooDeep: it nests too deeply.
        InvalidText: naming each invalid field.
    """
    if max_depth is not None and depth(value) > max_depth:
        raise TooDeep(field, max_depth)
    issues = find_invalid(value, field=field)
    if issues:
        raise InvalidText(issues)


# -- request parts, as bytes -------------------------------------------------------------


def json_body_issues(body: bytes) -> list[TextIssue]:
    """The invalid strings of a JSON request body, named by their JSON path.

    Fast for the common body: one regular-expression scan finds that no escape in it can
    decode to an invalid code point, and nothing is parsed. Bytes that are not UTF-8 are
    issues too (at the field holding them, when the rest is JSON). A body that is not JSON
    gives no issues: the route answers ``bad_json`` for it, as it would anyway.
    """
    if not body:
        return []
    encoding = json.detect_encoding(body)
    if body.startswith(codecs.BOM_UTF8):
        body, encoding = body[len(codecs.BOM_UTF8) :], "utf-8"
    undecodable = False
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError:
        undecodable = encoding == "utf-8"
        try:
            text = body.decode(encoding, "surrogateescape" if undecodable else "surrogatepass")
        except UnicodeDecodeError:
            return []
    else:
        if "\\u" not in text or _SUSPECT_ESCAPE.search(text) is None:
            return []
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        if undecodable:
            offset = next(i for i, ch in enumerate(text) if 0xDC80 <= ord(ch) <= 0xDCFF)
            return [_issue("", describe(text[offset], undecodable=True), offset)]
        return []
    return find_invalid(data, undecodable=undecodable)


def query_issues(query_string: bytes) -> list[TextIssue]:
    """The parameters of a raw query string (``a=1&b=%00``) that are not valid text once
    percent-decoded, named ``query.<name>`` like FastAPI's validation errors name them."""
    issues: list[TextIssue] = []
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8", "replace")
        for part in (raw_name, raw_value):
            issue = _decoded_issue(f"query.{repair(name)}", part.replace(b"+", b" "))
            if issue is not None:
                issues.append(issue)
                break
        if len(issues) >= _MAX_ISSUES:
            break
    return issues


def path_issues(raw_path: bytes) -> list[TextIssue]:
    """The request path, if it is not valid text once percent-decoded (field ``path``)."""
    issue = _decoded_issue("path", raw_path.partition(b"?")[0])
    return [issue] if issue is not None else []


def require_valid_url(raw_path: bytes, query_string: bytes) -> None:
    """Refuse a request line whose path or query string is not valid text once decoded.

    Raises:
        InvalidText: naming ``path`` or each ``query.<name>``.
    """
    issues = path_issues(raw_path) + query_issues(query_string)
    if issues:
        raise InvalidText(issues)


def _decoded_issue(field: str, raw: bytes) -> TextIssue | None:
    decoded = unquote_to_bytes(raw)
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _issue(field, f"a byte that is not UTF-8 (0x{decoded[exc.start]:02X})", exc.start)
    index = first_invalid(text)
    return None if index is None else _issue(field, describe(text[index]), index)


def document_issues(text: str) -> list[TextIssue]:
    """Invalid code points written as such in a document's text (not through escapes), with
    their line and column (1-based, like config issues)."""
    issues: list[TextIssue] = []
    for match in _INVALID.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
        problem = describe(match.group())
        issues.append(_issue("", problem, match.start(), line, column))
        if len(issues) >= _MAX_ISSUES:
            break
    return issues

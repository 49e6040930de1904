"""Turn a pydantic ``ValidationError`` into ``ConfigIssue``s a person can act on.

pydantic reports locations in its own terms (``spec.tools.1.python.handler``: the union tag is
part of the path; a one-or-list field reports index 0 even when the file wrote one mapping) and
messages in its own words. Here each location is walked against both the model types and the
parsed data, giving the natural path (``spec.tools[1].handler``), the line of that node, the
model that was being validated (for "did you mean" over its field names) and a plain message.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic_core import ErrorDetails

from astromesh.config.base import ShapedAs
from astromesh.config.compat.catalog import upstream_keys_at
from astromesh.config.constants import GUARDRAIL_TYPES, TOOL_TYPES
from astromesh.config.issues import (
    CONFIG_ERROR_TYPE,
    ConfigIssue,
    format_path,
    suggest,
    with_suggestion,
)
from astromesh.config.yaml_source import FieldPath, YamlDocument

_MISSING: Any = object()
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


@dataclass
class _Walk:
    """Where a pydantic location ends up in the file and in the models."""

    path: FieldPath
    parent_model: type[BaseModel] | None
    union_branch: bool


def issues_from_validation_error(
    error: ValidationError,
    *,
    model: type[BaseModel],
    document: YamlDocument | None,
    file: str,
    data: Any,
    skip_paths: Iterable[FieldPath] = (),
) -> list[ConfigIssue]:
    """One issue per pydantic error; errors at ``skip_paths`` (already reported) are dropped."""
    skip = set(skip_paths)
    issues: list[ConfigIssue] = []
    seen_union: dict[FieldPath, int] = {}
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"]) + _extra_field(err)
        walk = _walk(model, data, loc)
        message, suggestion, path, prefer_key = _describe(err, walk, _kind_of(model))
        if path in skip:
            continue
        if walk.union_branch:
            # pydantic reports each branch of a plain union; one line is enough.
            if path in seen_union:
                issues[seen_union[path]] = _merge_union(issues[seen_union[path]], message)
                continue
            seen_union[path] = len(issues)
        line = column = None
        if document is not None:
            position = document.position_of(path, prefer_key=prefer_key)
            line, column = position.line, position.column
        issues.append(ConfigIssue(file, line, column, format_path(path), message, suggestion))
    return issues


def _merge_union(issue: ConfigIssue, message: str) -> ConfigIssue:
    first = re.match(r"expected (.+?), got (.+)$", issue.message)
    second = re.match(r"expected (.+?), got", message)
    if not first or not second:
        return issue
    merged = f"expected {first.group(1)} or {second.group(1)}, got {first.group(2)}"
    return ConfigIssue(issue.file, issue.line, issue.column, issue.field, merged)


def _extra_field(err: ErrorDetails) -> tuple[str | int, ...]:
    """The sub-path a model validator named in ``config_error(field=...)``."""
    if err["type"] != CONFIG_ERROR_TYPE:
        return ()
    field = (err.get("ctx") or {}).get("field") or ""
    return tuple(int(p) if p.isdigit() else p for p in str(field).split(".") if p)


# --- walking a location through types and data -------------------------------------------


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` and ``Optional``; keep the annotation metadata."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *extra = get_args(tp)
            metadata.extend(extra)
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, metadata


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_members(tp: Any) -> list[Any]:
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not type(None)]
    return []


def _tag_member(members: list[Any], tag: object, node: Any) -> Any:
    """The member of a discriminated union that ``tag`` selects, if ``tag`` is that tag."""
    if not isinstance(node, dict) or node.get("type") != tag:
        return None
    for member in members:
        fields = member.model_fields if _is_model(member) else {}
        if "type" in fields and tag in get_args(fields["type"].annotation):
            return member
    return None


@cache
def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """Every name the input may use for a field (name or alias) -> the field's name."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({str(choice): name for choice in alias.choices})
        elif isinstance(alias, str):
            names[alias] = name
        else:
            names[info.alias or name] = name
    return names


def _step_data(node: Any, key: str | int) -> Any:
    if isinstance(node, dict) and isinstance(key, str):
        return node.get(key, _MISSING)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _MISSING


def _walk(root: type[BaseModel], data: Any, loc: tuple[str | int, ...]) -> _Walk:
    tp: Any = root
    node = data
    path: list[str | int] = []
    parent: type[BaseModel] | None = None
    union_branch = False
    for el in loc:
        if tp is not None:
            tp, _ = _unwrap(tp)
        members = _union_members(tp)
        if members and all(_is_model(m) for m in members):
            member = _tag_member(members, el, node)
            if member is not None:
                tp = member
                continue
            tp = None
        elif members and isinstance(el, str) and not (isinstance(node, dict) and el in node):
            union_branch = True  # pydantic's name of a plain-union branch, e.g. 'dict[str,any]'
            tp = None
            continue
        if _is_model(tp):
            parent = tp
            name = _field_names(tp).get(str(el))
            info = tp.model_fields.get(name) if name else None
            tp = None
            if info is not None:
                shaped = [m for m in info.metadata if isinstance(m, ShapedAs)]
                tp = shaped[0].shape if shaped else info.annotation
        else:
            origin = get_origin(tp)
            if isinstance(el, int) and isinstance(node, dict):
                # a one-or-list field given one mapping: pydantic says [0], the file has none
                tp = get_args(tp)[0] if origin is list else None
                continue
            if origin is list:
                tp = get_args(tp)[0]
            elif origin is dict:
                tp = get_args(tp)[1]
            else:
                tp = None
        path.append(el)
        node = _step_data(node, el)
    return _Walk(tuple(path), parent, union_branch)


# --- wording ------------------------------------------------------------------------------


def _got(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"'{text}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "none_required": "nothing",
}
_BOUNDS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}
_CONTAINER_NOUN = {
    "tools": "tool",
    "input": "guardrail",
    "output": "guardrail",
    "tool_results": "guardrail",
}
_TAGS = {"tool": TOOL_TYPES, "guardrail": GUARDRAIL_TYPES}


def _kind_of(model: type[BaseModel]) -> str | None:
    """The ``kind`` a document model accepts (``Agent``), or ``None`` for other models."""
    field = model.model_fields.get("kind")
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def _describe(
    err: ErrorDetails, walk: _Walk, kind_name: str | None = None
) -> tuple[str, str | None, FieldPath, bool]:
    """(message, suggestion, path, point-at-key) for one pydantic error. A misspelt
    upstream field (``permisions``) is suggested like one of ours."""
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    path = walk.path
    last = path[-1] if path else ""

    if kind == CONFIG_ERROR_TYPE:
        return str(ctx.get("message", err["msg"])), ctx.get("suggestion") or None, path, False
    if kind == "missing":
        return f"missing required field '{last}'", None, path, False
    if kind == "extra_forbidden":
        known = list(_field_names(walk.parent_model)) if walk.parent_model else []
        if kind_name is not None:
            known += upstream_keys_at(kind_name, path[:-1])
        hint = suggest(last, known)
        return with_suggestion(f"unknown field '{last}'", hint), hint, path, True
    if kind in ("literal_error", "enum"):
        expected = _QUOTED.findall(str(ctx.get("expected", "")))
        hint = suggest(value, expected)
        message = f"expected one of {', '.join(expected)}, got {_got(value)}"
        return with_suggestion(message, hint), hint, path, False
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        container = next((p for p in reversed(path) if isinstance(p, str)), "")
        noun = _CONTAINER_NOUN.get(container, "")
        expected = _QUOTED.findall(str(ctx.get("expected_tags", ""))) or list(_TAGS.get(noun, ()))
        if kind == "union_tag_not_found":
            message = "missing required field 'type'"
            if expected:
                message += f" (one of {', '.join(expected)})"
            return message, None, (*path, "type"), False
        tag = ctx.get("tag")
        hint = suggest(tag, expected)
        message = f"unknown {noun + ' ' if noun else ''}type '{tag}';"
        message += f" expected one of {', '.join(expected)}"
        return with_suggestion(message, hint), hint, (*path, "type"), False
    if kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {_got(value)}"
        if kind == "string_type" and isinstance(value, bool):
            message += " (quote it: YAML reads yes/no/on/off/true/false as booleans)"
        return message, None, path, False
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}, got {_got(value)}", None, path, False
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        if minimum == 1:
            return "must not be empty", None, path, False
        return f"needs at least {minimum} items", None, path, False
    if kind == "string_pattern_mismatch":
        return f"{_got(value)} does not match {ctx.get('pattern')}", None, path, False
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message, None, path, False

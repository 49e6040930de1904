"""``spec.output_schema`` as a JSON Schema the runtime can trust.

The schema comes from a document, and a registered document is untrusted: it is sent to the
model with every answering call (instructions, native response format) and every final
answer is validated against it. So, at load time, before any run:

- upstream's shorthand (``score: {type: integer}``, a mapping of property to schema, the same
  as its tool ``parameters``) becomes ``{type: object, properties: {...}}``; a schema that
  already says ``type: object`` is kept as written;
- the top level must describe an object (the run response's ``data`` is an object);
- it is bounded: :data:`MAX_SCHEMA_CHARS` of JSON and :data:`MAX_SCHEMA_DEPTH` levels of
  nesting, so validating one answer is cheap and the prompt stays small;
- ``$ref`` must be local (``#/...``): nothing is ever fetched to validate an answer;
- it must be a valid Draft 2020-12 schema, so a typo (``type: integr``) is a load error on
  its line instead of every run failing.

Regexes (``pattern``) are the registration check's concern (RE2 only, see
:mod:`astromesh.security.registration`); validation itself runs them on RE2 where RE2 accepts
them (:func:`astromesh.security.regex.schema_validator_class`).
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_SCHEMA_CHARS: Final = 16_384
"""JSON characters of an output schema (16 KiB): it is part of every answering prompt."""

MAX_SCHEMA_DEPTH: Final = 20
"""Levels of mappings and lists in an output schema (about ten levels of nested objects,
each being ``properties`` plus a name); real schemas use a handful."""

SchemaPath = tuple[str | int, ...]


class SchemaError(ValueError):
    """An output schema the runtime refuses; ``path`` is where, inside the schema."""

    def __init__(self, message: str, path: SchemaPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def normalize_output_schema(raw: Any) -> dict[str, Any]:
    """The schema in full JSON Schema form (upstream's shorthand expanded).

    Raises:
        SchemaError: not a mapping, or a top level that is not an object.
    """
    if not isinstance(raw, dict):
        raise SchemaError(f"must be a mapping (a JSON Schema), not {type(raw).__name__}")
    shorthand = "type" not in raw and "properties" not in raw and raw
    if shorthand and all(isinstance(value, dict) for value in raw.values()):
        return {"type": "object", "properties": dict(raw)}
    declared = raw.get("type", "object")
    if declared != "object":
        raise SchemaError(
            f"must describe an object (type: object, or upstream's shorthand of"
            f" properties), not type {declared!r}",
            ("type",),
        )
    schema = dict(raw)
    schema.setdefault("type", "object")
    return schema


def check_output_schema(schema: dict[str, Any]) -> None:
    """Refuse a schema that is too large, too deep, refers outside itself or is invalid.

    Raises:
        SchemaError: naming the limit or the place in the schema.
    """
    size = len(json.dumps(schema, ensure_ascii=False))
    if size > MAX_SCHEMA_CHARS:
        raise SchemaError(f"is {size} characters of JSON; at most {MAX_SCHEMA_CHARS} are allowed")
    deepest = _deepest(schema)
    if deepest is not None:
        raise SchemaError(
            f"nests deeper than {MAX_SCHEMA_DEPTH} levels", deepest[:MAX_SCHEMA_DEPTH]
        )
    for path, ref in _refs(schema):
        if not ref.startswith("#"):
            raise SchemaError(
                f"$ref {ref!r} points outside the schema; only local references ('#/...')"
                " are allowed (nothing is fetched to validate an answer)",
                path,
            )
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as InvalidSchema

    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema as exc:
        raise SchemaError(
            f"is not a valid JSON Schema: {exc.message}", tuple(exc.absolute_path)
        ) from None


def _deepest(value: Any, path: SchemaPath = ()) -> SchemaPath | None:
    """The path of the first value nested deeper than :data:`MAX_SCHEMA_DEPTH`, if any."""
    if len(path) > MAX_SCHEMA_DEPTH:
        return path
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if isinstance(item, dict | list):
            found = _deepest(item, (*path, key))
            if found is not None:
                return found
    return None


def _refs(value: Any, path: SchemaPath = ()) -> list[tuple[SchemaPath, str]]:
    found: list[tuple[SchemaPath, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("$ref", "$dynamicRef") and isinstance(item, str):
                found.append(((*path, key), item))
            else:
                found += _refs(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _refs(item, (*path, i))
    return found

"""Walks over the JSON Schemas a document carries (tool ``parameters``, ``output_schema``):
the places the registration check must look at, wherever they are nested."""

from __future__ import annotations

from typing import Any

SchemaPath = tuple[str | int, ...]


def schema_patterns(
    schema: Any, path: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """``(path, pattern)`` of every ``pattern`` and ``patternProperties`` key in a JSON
    Schema, at any depth (what :func:`re2_problem` must accept in a registered document)."""
    found: list[tuple[SchemaPath, str]] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                found.append(((*path, key), value))
            elif key == "patternProperties" and isinstance(value, dict):
                for regex, sub in value.items():
                    found.append(((*path, key, regex), str(regex)))
                    found += schema_patterns(sub, (*path, key, regex))
            else:
                found += schema_patterns(value, (*path, key))
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            found += schema_patterns(item, (*path, i))
    return found


def schema_refs(schema: Any, path: SchemaPath = ()) -> list[tuple[SchemaPath, str]]:
    """``(path, reference)`` of every ``$ref`` / ``$dynamicRef`` in a JSON Schema."""
    found: list[tuple[SchemaPath, str]] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                found.append(((*path, key), value))
            else:
                found += schema_refs(value, (*path, key))
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            found += schema_refs(item, (*path, i))
    return found

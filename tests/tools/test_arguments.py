"""The quick argument check agrees with the JSON-Schema validator whenever it says "valid",
and leaves every schema outside its flat shape to the validator."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from astromesh.security.regex import schema_validator_class
from astromesh.tools import PythonTool, ToolContext
from astromesh.tools.arguments import quick_check

FLAT = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "title": "N"},
        "x": {"type": "number", "default": 1.5},
        "s": {"type": "string", "description": "text"},
        "b": {"type": "boolean"},
        "z": {"type": "null"},
        "l": {"type": "array"},
        "o": {"type": "object"},
        "either": {"type": ["string", "integer"]},
        "anything": {},
    },
    "required": ["n", "s"],
    "additionalProperties": False,
}

VALUES: list[Any] = [0, 1, -7, 1.0, 2.5, True, False, None, "", "t", [], [1], {}, {"k": 1}]


def _argument_sets() -> list[dict[str, Any]]:
    names = [*FLAT["properties"], "extra"]
    sets: list[dict[str, Any]] = [{}, {"n": 1}, {"s": "a"}]
    for name, value in itertools.product(names, VALUES):
        sets.append({"n": 1, "s": "a", name: value})
        sets.append({name: value})
    return sets


@pytest.mark.parametrize(
    "schema",
    [
        FLAT,
        {**FLAT, "additionalProperties": True},
        {key: value for key, value in FLAT.items() if key != "required"},
        {"type": "object", "properties": {}},
        {"type": "object"},
        {},
    ],
)
def test_quick_yes_is_the_validators_yes(schema):
    check = quick_check(schema)
    assert check is not None
    validator = schema_validator_class()(schema)
    said_valid = 0
    for arguments in _argument_sets():
        if check(arguments):
            said_valid += 1
            assert validator.is_valid(arguments), arguments
    assert said_valid > 0


def test_valid_calls_of_a_flat_schema_are_recognised():
    check = quick_check(FLAT)
    assert check is not None
    assert check({"n": 3, "s": "x", "either": 4, "anything": [None], "z": None})
    assert not check({"n": 3})  # required missing: the validator words the message
    assert not check({"n": 3, "s": "x", "extra": 1})
    assert not check({"n": 1.0, "s": "x"})  # an integer to JSON Schema: the validator decides


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
        {"type": "object", "properties": {"a": {"enum": [1, 2]}}},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {}}},
        {"type": "object", "properties": {"a": {"type": "date"}}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "array"},
        {"type": "object", "required": "a"},
        {"type": "object", "properties": {"a": {"type": []}}},
    ],
)
def test_other_schemas_go_to_the_validator(schema):
    assert quick_check(schema) is None


def bounded(count: int, label: str = "x") -> str:
    return label * count


async def test_a_tool_with_a_schema_of_its_own_still_reports_its_violations():
    schema = {
        "type": "object",
        "properties": {"count": {"type": "integer", "minimum": 1}, "label": {"type": "string"}},
        "required": ["count"],
    }
    tool = PythonTool("bounded", bounded, parameters=schema)
    context = ToolContext(run_id="run_1", agent="a", session_id="s")
    refused = await tool.call({"count": 0}, context)
    assert not refused.ok and "count: 0 is less than the minimum of 1" in refused.content
    assert (await tool.call({"count": 2, "label": "ab"}, context)).content == "abab"

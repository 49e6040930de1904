"""Python tools: schema from type hints, argument validation, failures as results."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from pydantic import BaseModel

from astromesh.errors import ConfigurationError
from astromesh.models.types import ToolCall
from astromesh.tools import PythonTool, ToolContext, ToolRegistry, schema_from_signature
from astromesh.tools.python import import_handler

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


def add(a: int, b: int = 2) -> int:
    """Add two integers."""
    return a + b


async def shout(text: str, times: int = 1) -> str:
    await asyncio.sleep(0)
    return (text.upper() + "!") * times


def whoami(context: ToolContext) -> str:
    return f"{context.agent}/{context.session_id}"


def boom(x: int) -> int:
    raise RuntimeError(f"cannot handle {x}")


class Point(BaseModel):
    x: float
    y: float


def norm(p: Point, mode: Literal["l1", "l2"] = "l2") -> float:
    return abs(p.x) + abs(p.y) if mode == "l1" else (p.x**2 + p.y**2) ** 0.5


def test_schema_from_type_hints():
    schema = schema_from_signature(add)
    assert schema["type"] == "object"
    assert schema["properties"]["a"] == {"type": "integer"}
    assert schema["properties"]["b"] == {"type": "integer", "default": 2}
    assert schema["required"] == ["a"]
    assert schema["additionalProperties"] is False


def test_schema_leaves_out_context_and_handles_models():
    assert "context" not in schema_from_signature(whoami).get("properties", {})
    schema = schema_from_signature(norm)
    assert schema["properties"]["mode"]["enum"] == ["l1", "l2"]
    assert "Point" in schema["$defs"]


async def test_sync_and_async_functions_run():
    assert (await PythonTool("add", add).call({"a": 3}, CTX)).content == "5"
    result = await PythonTool("shout", shout).call({"text": "hi", "times": 2}, CTX)
    assert result.ok and result.content == "HI!HI!"
    assert (await PythonTool("whoami", whoami).call({}, CTX)).content == "a/s"


async def test_docstring_is_the_default_description():
    assert PythonTool("add", add).description == "Add two integers."


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "'a' is a required property"),
        ({"a": "three"}, "a: 'three' is not of type 'integer'"),
        ({"a": 1, "c": 5}, "Additional properties are not allowed ('c' was unexpected)"),
        ({"_raw": "{not json"}, "arguments are not valid JSON"),
    ],
)
async def test_bad_arguments_become_a_readable_result(arguments, expected):
    result = await PythonTool("add", add).call(arguments, CTX)
    assert not result.ok
    assert "invalid arguments for tool 'add'" in result.content
    assert expected in result.content


async def test_exceptions_become_failed_results():
    result = await PythonTool("boom", boom).call({"x": 4}, CTX)
    assert not result.ok
    assert result.content == "tool 'boom' failed: RuntimeError: cannot handle 4"


async def test_model_parameters_arrive_as_model_instances():
    tool = PythonTool("norm", norm)
    result = await tool.call({"p": {"x": 3, "y": 4}, "mode": "l2"}, CTX)
    assert result.ok and result.content == "5.0"
    assert (await tool.call({"p": {"x": -1, "y": 2}, "mode": "l1"}, CTX)).content == "3.0"


async def test_registry_refuses_unknown_and_forbidden_tools():
    registry = ToolRegistry([PythonTool("add", add), PythonTool("boom", boom)], allowed=["add"])
    assert [d.name for d in registry.definitions()] == ["add"]
    forbidden = await registry.call(ToolCall(id="1", name="boom", arguments={"x": 1}), CTX)
    assert not forbidden.ok and "not permitted" in forbidden.content
    unknown = await registry.call(ToolCall(id="2", name="nope", arguments={}), CTX)
    assert not unknown.ok and unknown.content == "unknown tool 'nope'; available tools: add"
    ok = await registry.call(ToolCall(id="3", name="add", arguments={"a": 1, "b": 1}), CTX)
    assert ok.ok and ok.content == "2"


def test_import_handler_from_environment_and_search_path(tmp_path):
    assert import_handler("json:dumps") is __import__("json").dumps
    pkg = tmp_path / "mytools_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "ops.py").write_text("def triple(x: int) -> int:\n    return 3 * x\n")
    func = import_handler("mytools_pkg.ops:triple", search_path=tmp_path)
    assert func(2) == 6


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("no_such_module_xyz:f", "cannot import"),
        ("json:no_such_function", "module 'json' has no 'no_such_function'"),
        ("json:__doc__", "is not callable"),
    ],
)
def test_import_handler_errors(handler, message):
    with pytest.raises(ConfigurationError, match=message):
        import_handler(handler)

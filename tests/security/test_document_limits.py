"""Agent documents are hostile input: size and nesting limits answer 422, never 500.

``POST /v1/agents`` with ten thousand nested lists used to end in a ``RecursionError`` (500);
a document may now nest 64 levels, expand (aliases counted) to 20,000 values, name 64 tools,
and so on (``astromesh.config.limits``). Each refusal is an issue naming line, field and limit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from astromesh.config import load_path, load_text
from astromesh.config.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_DISPLAY_NAME_CHARS,
    MAX_LIST_ITEMS,
    MAX_NAME_CHARS,
    MAX_NESTING_DEPTH,
    MAX_PROMPT_CHARS,
    MAX_TOOLS,
)
from tests.channels.conftest import agents_dir, client_for, make_app
from tests.support.agents import agent_document, primary

__all__ = ["agents_dir", "client_for", "make_app"]  # fixtures shared with the channel tests

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "http://127.0.0.1:9/v1"


def document(name: str = "limited", **spec: Any) -> dict[str, Any]:
    return agent_document(name, model=primary(NOWHERE), **spec)


def client_tools(count: int) -> list[dict[str, Any]]:
    return [{"name": f"tool_{i}", "type": "client", "description": "d"} for i in range(count)]


async def post_yaml(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post(
        "/v1/agents", content=text, headers={"content-type": "application/yaml"}
    )


def the_issue(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_agent"
    return error["issues"][0]  # type: ignore[no-any-return]


# -- nesting ---------------------------------------------------------------------------------


def _nested_in_schema(depth: int, *, as_yaml: bool) -> str:
    doc = document()
    doc["spec"]["output_schema"] = {"type": "object", "deep": "@@"}
    if as_yaml:
        return yaml.safe_dump(doc, sort_keys=False).replace("'@@'", "[" * depth + "]" * depth)
    return json.dumps(doc).replace('"@@"', "[" * depth + "]" * depth)


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("as_yaml", [False, True], ids=["json", "yaml"])
async def test_deeply_nested_documents_are_a_422_naming_line_and_field(
    make_app: Any, client_for: Any, depth: int, as_yaml: bool
) -> None:
    client = client_for(make_app())
    body = _nested_in_schema(depth, as_yaml=as_yaml)
    started = time.perf_counter()
    response = await post_yaml(client, body)
    assert time.perf_counter() - started < 1.0
    issue = the_issue(response)
    assert issue["message"] == f"nesting deeper than {MAX_NESTING_DEPTH} levels"
    assert issue["line"] is not None and issue["column"] is not None
    assert issue["field"].startswith("spec.output_schema.deep[0][0]")


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
async def test_bare_nesting_of_any_kind_is_a_422(
    make_app: Any, client_for: Any, depth: int, opener: str
) -> None:
    client = client_for(make_app())
    if opener == "- ":  # block sequences: each level indented one more
        text = "".join(" " * i + "- " + "\n" for i in range(300))
    else:
        closer = {"[": "]", "{a: ": "}"}[opener]
        text = opener * depth + "1" + closer * depth
    issue = the_issue(await post_yaml(client, text))
    assert "nesting deeper than 64 levels" in issue["message"]


async def test_a_json_body_nested_deeply_is_a_422(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app())
    body = "[" * 100_000 + "]" * 100_000
    response = await client.post(
        "/v1/agents", content=body, headers={"content-type": "application/json"}
    )
    assert "nesting deeper than 64 levels" in the_issue(response)["message"]


def _nested_in_parameters(depth: int) -> str:
    """A client tool's parameters nesting ``depth`` lists (an output schema has a tighter
    limit of its own, ``astromesh.structured.MAX_SCHEMA_DEPTH``)."""
    doc = document()
    tool = {"name": "deep", "type": "client", "description": "d"}
    tool["parameters"] = {"type": "object", "deep": "@@"}
    doc["spec"]["tools"] = [tool]
    return json.dumps(doc).replace('"@@"', "[" * depth + "]" * depth)


async def test_nesting_at_the_limit_is_accepted(make_app: Any, client_for: Any) -> None:
    # The document's own levels (spec, tools, [0], parameters, deep) count towards the 64.
    client = client_for(make_app())
    response = await post_yaml(client, _nested_in_parameters(MAX_NESTING_DEPTH - 5))
    assert response.status_code == 201, response.text
    response = await post_yaml(client, _nested_in_parameters(MAX_NESTING_DEPTH - 4))
    assert "nesting deeper" in the_issue(response)["message"]


def test_aliases_cannot_nest_past_the_limit() -> None:
    # Each anchor is shallow; aliases stack them inside each other.
    lines = ["a0: &a0 " + "[" * 40 + "]" * 40]
    lines += [f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 for i in range(1, 200)]
    result = load_text("\n".join(lines), env={})
    assert any("nesting deeper than 64 levels" in issue.message for issue in result.errors)


# -- aliases ---------------------------------------------------------------------------------


def _billion_laughs(levels: int = 9) -> str:
    names = "abcdefghij"
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{names[i - 1]}"] * 9)
        lines.append(f"{names[i]}: &{names[i]} [{refs}]")
    return "\n".join(lines) + "\n"


async def test_a_billion_laughs_document_is_refused_quickly(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app())
    # The bomb is the output schema of an otherwise valid document.
    doc = yaml.safe_dump(document(), sort_keys=False)
    text = _billion_laughs() + doc.replace("spec:\n", "spec:\n  output_schema: {bomb: *i}\n", 1)
    started = time.perf_counter()
    response = await post_yaml(client, text)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 422
    messages = [issue["message"] for issue in response.json()["error"]["issues"]]
    assert any("document too large: over 20000 values" in m for m in messages)


# -- counts and lengths ----------------------------------------------------------------------


async def test_too_many_tools_is_a_422_naming_the_limit(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app())
    issue = the_issue(
        await client.post("/v1/agents", json=document(tools=client_tools(MAX_TOOLS + 1)))
    )
    assert issue["field"] == "spec.tools"
    assert issue["message"] == f"too many tools: {MAX_TOOLS + 1}, the limit is {MAX_TOOLS}"
    assert issue["line"] is not None


async def test_a_hundred_thousand_tools_are_refused_before_they_are_read(
    make_app: Any, client_for: Any
) -> None:
    # libyaml counts the values first: the document is never composed or validated.
    client = client_for(make_app(max_body_bytes=16 * 1024 * 1024))
    started = time.perf_counter()
    response = await client.post("/v1/agents", json=document(tools=[{}] * 100_000))
    assert time.perf_counter() - started < 1.0
    issue = the_issue(response)
    assert issue["field"] == "spec.tools"
    assert issue["message"].startswith("document too large: over 20000 values")


async def test_thousands_of_tools_are_counted_not_validated(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app())
    started = time.perf_counter()
    response = await client.post("/v1/agents", json=document(tools=[{}] * 5_000))
    assert time.perf_counter() - started < 1.0
    assert the_issue(response)["message"] == f"too many tools: 5000, the limit is {MAX_TOOLS}"


async def test_the_tool_limit_itself_is_accepted(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app())
    response = await client.post("/v1/agents", json=document(tools=client_tools(MAX_TOOLS)))
    assert response.status_code == 201, response.text


async def test_a_too_long_name_is_a_422_naming_the_limit(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app())
    issue = the_issue(await client.post("/v1/agents", json=document("a" * (MAX_NAME_CHARS + 1))))
    assert issue["field"] == "metadata.name"
    assert f"the limit is {MAX_NAME_CHARS}" in issue["message"]
    response = await client.post("/v1/agents", json=document("a" * MAX_NAME_CHARS))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("section", "value", "field", "limit"),
    [
        (
            "identity",
            {"description": "d" * (MAX_DESCRIPTION_CHARS + 1)},
            "spec.identity.description",
            MAX_DESCRIPTION_CHARS,
        ),
        (
            "identity",
            {"display_name": "n" * (MAX_DISPLAY_NAME_CHARS + 1)},
            "spec.identity.display_name",
            MAX_DISPLAY_NAME_CHARS,
        ),
        ("prompts", {"system": "p" * (MAX_PROMPT_CHARS + 1)}, "spec.prompts.system", 32768),
        (
            "prompts",
            {"templates": {"t": "p" * (MAX_PROMPT_CHARS + 1)}},
            "spec.prompts.templates.t",
            MAX_PROMPT_CHARS,
        ),
        (
            "guardrails",
            {"input": [{"type": "max_length", "max_chars": 10}] * (MAX_LIST_ITEMS + 1)},
            "spec.guardrails.input",
            MAX_LIST_ITEMS,
        ),
        (
            "orchestration",
            {
                "pattern": "pipeline",
                "stages": [{"name": f"s{i}", "prompt": "p"} for i in range(MAX_LIST_ITEMS + 1)],
            },
            "spec.orchestration.stages",
            MAX_LIST_ITEMS,
        ),
        (
            "model",
            {
                "primary": {"provider": "openai_compat", "model": "m", "endpoint": NOWHERE},
                "fallback": [{"provider": "openai_compat", "model": "m", "endpoint": NOWHERE}]
                * (MAX_LIST_ITEMS + 1),
            },
            "spec.model.fallback",
            MAX_LIST_ITEMS,
        ),
    ],
)
async def test_long_fields_and_lists_are_a_422_naming_field_and_limit(
    make_app: Any, client_for: Any, section: str, value: Any, field: str, limit: int
) -> None:
    client = client_for(make_app())
    doc = document()
    doc["spec"][section] = {**doc["spec"].get(section, {}), **value}
    issue = the_issue(await client.post("/v1/agents", json=doc))
    assert issue["field"] == field
    assert issue["message"].endswith(f"the limit is {limit}")


async def test_the_body_limit_still_answers_413(make_app: Any, client_for: Any) -> None:
    client = client_for(make_app(max_body_bytes=64 * 1024))
    doc = document()
    doc["spec"]["identity"]["description"] = "x" * (100 * 1024)
    response = await client.post("/v1/agents", json=doc)
    assert response.status_code == 413


# -- what ships still validates --------------------------------------------------------------


@pytest.mark.parametrize("folder", ["agents", "tests/config/valid"])
def test_shipped_and_example_documents_are_within_the_limits(folder: str) -> None:
    result = load_path(ROOT / folder)
    assert result.errors == []
    assert result.agents

"""ToolConfig.json_schema(): one full JSON Schema whatever form the file used."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from astromesh.config import AnyTool, LoadResult, ToolConfig
from astromesh.config.constants import GUARDRAIL_TYPES, PROVIDER_TYPES, TOOL_TYPES
from astromesh.config.guardrails import AnyGuardrail
from astromesh.config.provider import ProviderEntry
from astromesh.config.tools import is_json_schema

TOOL = TypeAdapter(AnyTool)


def tool(**data: Any) -> ToolConfig:
    result = TOOL.validate_python(data)
    assert isinstance(result, ToolConfig)
    return result


def test_upstream_parameter_map(valid: LoadResult) -> None:
    lookup = valid.agents["sales-qualifier"].spec.tools[0]
    assert lookup.json_schema() == {
        "type": "object",
        "properties": {
            "company_name": {"type": "string", "description": "Company name to look up"},
            "country": {"type": "string", "enum": ["AR", "US"]},
            "employees": {"type": "integer", "default": 10},
        },
        # required unless `required: false` or a default is given
        "required": ["company_name"],
    }


def test_full_json_schema_is_kept(valid: LoadResult) -> None:
    score = valid.agents["sales-qualifier"].spec.tools[2]
    assert score.json_schema() == {
        "type": "object",
        "properties": {"budget": {"type": "number"}, "authority": {"type": "boolean"}},
        "required": ["budget"],
    }


def test_json_schema_returns_a_copy(valid: LoadResult) -> None:
    score = valid.agents["sales-qualifier"].spec.tools[2]
    score.json_schema()["properties"]["x"] = {}
    assert "x" not in score.json_schema()["properties"]


def test_schema_form_without_type_gets_type_object() -> None:
    t = tool(type="client", name="t", parameters={"properties": {"q": {"type": "string"}}})
    assert t.json_schema() == {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "required": [],
    }


def test_parameters_named_like_schema_keywords_stay_a_map() -> None:
    params = {"type": {"type": "string"}, "properties": {"type": "object"}}
    assert not is_json_schema(params)
    t = tool(type="client", name="t", parameters=params)
    schema = t.json_schema()
    assert set(schema["properties"]) == {"type", "properties"}
    assert schema["required"] == ["type", "properties"]


def test_explicit_required_true_and_null_default() -> None:
    t = tool(
        type="client",
        name="t",
        parameters={"a": {"type": "string", "default": None, "required": True}},
    )
    assert t.json_schema()["properties"]["a"] == {"type": "string", "default": None}
    assert t.json_schema()["required"] == ["a"]


def test_defaults_without_parameters() -> None:
    assert tool(type="client", name="c").json_schema() == {
        "type": "object",
        "properties": {},
        "required": [],
    }
    rag = tool(type="rag", name="docs", pipeline="p").json_schema()
    assert rag["required"] == ["query"]
    agent = tool(type="agent", name="helper", agent="other").json_schema()
    assert agent["properties"]["query"]["type"] == "string"


def test_schema_form_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        tool(type="client", name="t", parameters={"type": "object", "required": "a"})


def test_mcp_transport_rules() -> None:
    http = tool(type="mcp", name="m", transport="streamable_http", url="http://x/mcp")
    assert http.json_schema()["type"] == "object"
    with pytest.raises(ValidationError, match="'url' is for transport 'streamable_http'"):
        tool(type="mcp", name="m", command="srv", url="http://x")
    with pytest.raises(ValidationError, match="needs 'url'"):
        tool(type="mcp", name="m", transport="streamable_http")


def test_webhook_requires_http_url() -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        tool(type="webhook", name="w", url="ftp://x")


def test_tool_name_shape() -> None:
    with pytest.raises(ValidationError, match="not a valid tool name"):
        tool(type="client", name="has space")


def test_literal_vocabularies_match_the_constants() -> None:
    tags = {m.model_fields["type"].annotation.__args__[0] for m in AnyTool.__args__[0].__args__}
    assert tags == set(TOOL_TYPES)
    guard = AnyGuardrail.__args__[0].__args__  # type: ignore[attr-defined]
    assert {m.model_fields["type"].annotation.__args__[0] for m in guard} == set(GUARDRAIL_TYPES)
    provider_types = ProviderEntry.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
    assert set(provider_types) == set(PROVIDER_TYPES)

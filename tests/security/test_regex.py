"""Regex bombs: patterns a document names run on RE2 (linear time), so a catastrophic pattern
cannot stall the event loop; registered documents may only use patterns RE2 accepts."""

from __future__ import annotations

import asyncio

import httpx

from astromesh.security.regex import compile_pattern, re2_problem
from astromesh.tools.python import PythonTool
from tests.security.conftest import HostileApps, registered
from tests.support.model_servers import Reply, ScriptedOpenAIServer

BOMB = "(a+)+$"
"""On Python's ``re``, 30 ``a`` and a ``b`` take minutes; on RE2, microseconds."""
VICTIM = "a" * 5000 + "b"


def refusals(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {i["field"]: i["message"] for i in response.json()["error"]["issues"]}


def test_document_patterns_run_on_re2() -> None:
    assert compile_pattern(BOMB).search(VICTIM) is None
    assert re2_problem(BOMB) is None
    assert "\\1" in (re2_problem(r"(a)\1") or "")
    # An operator's file may still use Python-only syntax; it runs on re.
    assert compile_pattern(r"(?<=x)y").search("xy") is not None


async def test_a_catastrophic_guardrail_pattern_cannot_stall_a_run(
    hostile_app: HostileApps, openai_server: ScriptedOpenAIServer
) -> None:
    client = hostile_app()
    document = registered(
        guardrails={
            "input": [{"type": "content_filter", "blocked_patterns": [BOMB]}],
            "tool_results": [{"type": "prompt_injection", "extra_patterns": [BOMB]}],
        }
    )
    assert (await client.post("/v1/agents", json=document)).status_code == 201
    openai_server.push(Reply("fine"))
    # A stalled event loop would make this time out (on re it takes far longer than 20 s).
    response = await asyncio.wait_for(
        client.post("/v1/agents/posted/run", json={"query": VICTIM}), timeout=20
    )
    assert response.json()["answer"] == "fine"


async def test_patterns_re2_cannot_run_are_refused_at_registration(
    hostile_app: HostileApps,
) -> None:
    document = registered(
        guardrails={"input": [{"type": "content_filter", "blocked_patterns": [r"(a+)\1$"]}]},
        tools=[
            {
                "name": "hook",
                "type": "webhook",
                "url": "https://example.com/",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string", "pattern": r"^(?=a)(a|aa)+$"}},
                    "patternProperties": {"^x": {"type": "string"}},
                },
            }
        ],
    )
    found = refusals(await hostile_app().post("/v1/agents", json=document))
    assert set(found) >= {
        "spec.guardrails.input[0].blocked_patterns[0]",
        "spec.tools[0].parameters.properties.q.pattern",
        "spec.tools[0].parameters.patternProperties",
    }
    assert "RE2" in found["spec.guardrails.input[0].blocked_patterns[0]"]


async def test_a_tool_argument_pattern_is_matched_in_linear_time() -> None:
    tool = PythonTool(
        "echo",
        lambda q: q,
        parameters={
            "type": "object",
            "properties": {"q": {"type": "string", "pattern": BOMB}},
            "required": ["q"],
        },
    )
    problems = await asyncio.wait_for(asyncio.to_thread(tool.argument_errors, {"q": VICTIM}), 20)
    assert problems and "does not match" in problems[0]


async def test_schema_references_stay_inside_the_document(hostile_app: HostileApps) -> None:
    tool = {
        "name": "hook",
        "type": "webhook",
        "url": "https://example.com/",
        "parameters": {
            "type": "object",
            "properties": {"q": {"$ref": "http://127.0.0.1:9/schema"}, "r": {"$ref": "#/$defs/r"}},
            "$defs": {"r": {"type": "string"}},
        },
    }
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=[tool])))
    assert set(found) == {'spec.tools[0].parameters.properties.q["$ref"]'}

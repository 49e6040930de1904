"""Swarm end to end: handoffs between agents, the shared conversation, bounded loops."""

from __future__ import annotations

import pytest

from astromesh.errors import ConfigurationError
from astromesh.runs.state import RunStatus
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.orchestration import step_types, steps_of, write_pattern_agent


def handoff(agent: str, reason: str = "better placed") -> Reply:
    return Reply(tool_calls=[("handoff", {"agent": agent, "reason": reason})])


@pytest.fixture
def billing_server():
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def desk(agents_dir, openai_server, billing_server):
    """Swarm ``desk`` over ``triage`` (on openai_server) and ``billing`` (its own server)."""

    def write(**fields: object) -> tuple[ScriptedOpenAIServer, ScriptedOpenAIServer]:
        write_agent(
            agents_dir,
            "triage",
            model=primary(openai_server.url),
            prompts={"system": "You are triage."},
            identity={"description": "Routes requests"},
            tools=[python_tool("explode", "explode")],
        )
        write_agent(
            agents_dir,
            "billing",
            model=primary(billing_server.url),
            prompts={
                "system": "You are billing. Tools: {{ tools | map(attribute='name') | join(',') }}"
            },
            identity={"description": "Handles refunds"},
            tools=[python_tool("add", "add")],
        )
        write_pattern_agent(
            agents_dir, "desk", openai_server.url, "swarm", agents=["triage", "billing"], **fields
        )
        return openai_server, billing_server

    return write


async def test_a_handoff_carries_the_conversation_to_the_next_agent(desk, make_runtime, recorder):
    triage, billing = desk()
    triage.push(
        Reply(
            "Let me pass you on.",
            tool_calls=[("handoff", {"agent": "billing", "reason": "refund"})],
        )
    )
    billing.push(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply("Refunded 42 EUR."))
    run = await make_runtime().run("desk", "I want a refund of 40 + 2", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "Refunded 42 EUR."
    assert step_types(run) == [
        "prepare",
        "model_call",
        "handoff",
        "model_call",
        "tool_call",
        "model_call",
    ]
    assert steps_of(run, "handoff") == [
        {"source": "triage", "target": "billing", "reason": "refund", "ok": True, "error": ""}
    ]
    assert run.data["swarm"] == {"agent": "billing", "trail": ["triage", "billing"]}
    # triage: its own prompt and tools, plus a handoff to the others only
    first = triage.requests[0]
    assert first["messages"][0] == {"role": "system", "content": "You are triage."}
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(offered) == {"explode", "handoff"}
    assert offered["handoff"]["parameters"]["properties"]["agent"]["enum"] == ["billing"]
    assert "billing: Handles refunds" in offered["handoff"]["description"]
    # billing: its own system prompt, then the shared conversation so far
    messages = billing.requests[0]["messages"]
    assert messages[0] == {"role": "system", "content": "You are billing. Tools: add"}
    assert messages[1] == {"role": "user", "content": "I want a refund of 40 + 2"}
    assert messages[2]["content"] == "Let me pass you on."
    assert messages[2]["tool_calls"][0]["function"]["name"] == "handoff"
    assert messages[3]["role"] == "tool" and messages[3]["content"] == "Handed off to 'billing'."
    assert {t["function"]["name"] for t in billing.requests[0]["tools"]} == {"add", "handoff"}
    # billing's tool ran through the swarm's act stage, qualified by its agent
    [call] = steps_of(run, "tool_call")
    assert (call["name"], call["result"], call["permitted"]) == ("billing/add", "42", True)
    assert billing.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": messages_call_id(billing.requests[1]),
        "content": "42",
    }
    assert (len(triage.requests), len(billing.requests)) == (1, 2)
    assert recorder.tokens() == "Let me pass you on.Refunded 42 EUR."


def messages_call_id(request: dict) -> str:
    return request["messages"][-2]["tool_calls"][0]["id"]


async def test_a_handoff_to_itself_or_an_unknown_agent_is_an_error_for_the_model(
    desk, make_runtime
):
    triage, _ = desk()
    triage.push(handoff("triage"), handoff("sales"), Reply("I will answer myself."))
    run = await make_runtime().run("desk", "hello")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "I will answer myself."
    results = [r["messages"][-1]["content"] for r in triage.requests[1:]]
    assert results == [
        "Handoff refused: you are already 'triage'; hand off to another agent or answer yourself",
        "Handoff refused: unknown agent 'sales'; the other agents are: billing",
    ]
    assert [h["ok"] for h in steps_of(run, "handoff")] == [False, False]
    assert run.data["swarm"]["agent"] == "triage"


async def test_a_handoff_loop_stops_at_max_handoffs(desk, make_runtime):
    triage, billing = desk(max_handoffs=3)
    triage.push(handoff("billing"), handoff("billing"))
    billing.push(handoff("triage"), handoff("triage"))
    run = await make_runtime().run("desk", "ping-pong")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "handoff_limit"
    assert run.error == (
        "handoff limit reached (max_handoffs=3); "
        "active agents: triage -> billing -> triage -> billing"
    )
    assert len(triage.requests) + len(billing.requests) == 4
    assert run.pattern_state["handoffs"] == 4


async def test_a_failing_member_tool_is_reported_to_the_model(desk, make_runtime):
    triage, _ = desk()
    triage.push(Reply(tool_calls=[("explode", {"reason": "no disk"})]), Reply("Sorry."))
    run = await make_runtime().run("desk", "break it")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Sorry."
    [call] = steps_of(run, "tool_call")
    assert call["name"] == "triage/explode" and call["ok"] is False
    assert triage.requests[1]["messages"][-1]["content"] == (
        "tool 'explode' failed: ValueError: no disk"
    )


async def test_max_iterations_bounds_the_swarm(desk, make_runtime):
    triage, _ = desk(max_iterations=2)
    triage.push(*[Reply(tool_calls=[("explode", {"reason": "x"})])] * 2)
    run = await make_runtime().run("desk", "loop")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "max_iterations"


async def test_a_member_without_native_tools_uses_the_text_protocol(desk, make_runtime):
    triage, billing = desk()
    runtime = make_runtime()
    (await runtime.get("triage")).router.primary().supports_native_tools = False
    triage.push(Reply('Action: handoff\nAction Input: {"agent": "billing", "reason": "money"}'))
    billing.push(Reply("Refund done."))
    run = await runtime.run("desk", "refund")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Refund done."
    assert "tools" not in triage.requests[0]
    assert "- handoff:" in triage.requests[0]["messages"][0]["content"]
    assert billing.requests[0]["messages"][-1] == {
        "role": "user",
        "content": "Observation: Handed off to 'billing'.",
    }


async def test_unknown_swarm_agents_fail_at_build_time(openai_server, agents_dir, make_runtime):
    write_agent(agents_dir, "triage", model=primary(openai_server.url))
    write_pattern_agent(agents_dir, "desk", openai_server.url, "swarm", agents=["triage", "billng"])
    with pytest.raises(ConfigurationError, match=r"orchestration.agents\[1\]: agent 'billng'"):
        await make_runtime().get("desk")


async def test_a_swarm_cannot_contain_itself(openai_server, agents_dir, make_runtime):
    write_agent(agents_dir, "triage", model=primary(openai_server.url))
    write_pattern_agent(agents_dir, "desk", openai_server.url, "swarm", agents=["desk", "triage"])
    with pytest.raises(ConfigurationError, match="swarm agents contain each other: desk -> desk"):
        await make_runtime().get("desk")

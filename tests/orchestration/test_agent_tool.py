"""Agent tools: ``type: agent`` tools run another agent as a child run of the caller."""

from __future__ import annotations

import pytest

from astromesh.errors import ConfigurationError
from astromesh.runs.state import RunStatus
from astromesh.runtime import MAX_AGENT_DEPTH
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply
from tests.support.orchestration import steps_of, stored, user_contents, write_worker


def agent_tool(name: str, agent: str, **extra: object) -> dict[str, object]:
    return {"type": "agent", "name": name, "agent": agent, **extra}


async def test_a_react_agent_calls_another_agent(openai_server, agents_dir, make_runtime):
    write_worker(agents_dir, "expert", openai_server.url, description="Knows astronomy")
    write_agent(
        agents_dir,
        "front",
        model=primary(openai_server.url),
        tools=[agent_tool("ask_expert", "expert", description="Ask the astronomy expert")],
    )
    openai_server.push(
        Reply(tool_calls=[("ask_expert", {"query": "How far is the Moon?"})]),
        Reply("About 384,400 km."),
        Reply("The expert says about 384,400 km."),
    )
    runtime = make_runtime()
    run = await runtime.run("front", "Moon distance?", session_id="web")

    assert run.status is RunStatus.SUCCEEDED
    assert run.answer == "The expert says about 384,400 km."
    offered = openai_server.requests[0]["tools"][0]["function"]
    assert offered["name"] == "ask_expert"
    assert offered["description"] == "Ask the astronomy expert"
    assert offered["parameters"]["required"] == ["query"]
    # the child got the query as its user message, in its own session
    assert user_contents(openai_server.requests[1]) == ["How far is the Moon?"]
    [call] = steps_of(run, "tool_call")
    assert call["result"] == "About 384,400 km." and call["ok"] is True
    child = await stored(runtime, call["child_run_id"])
    assert (child.parent_run_id, child.depth, child.session_id) == (run.id, 1, "web/expert")
    assert openai_server.requests[2]["messages"][-1]["content"] == "About 384,400 km."


async def test_a_failed_child_is_a_failed_tool_result(openai_server, agents_dir, make_runtime):
    write_worker(agents_dir, "expert", openai_server.url)
    write_agent(
        agents_dir,
        "front",
        model=primary(openai_server.url),
        tools=[agent_tool("ask_expert", "expert")],
    )
    openai_server.push(
        Reply(tool_calls=[("ask_expert", {"query": "?"})]),
        Reply("bad request", status=400),
        Reply("The expert is unavailable."),
    )
    runtime = make_runtime()
    run = await runtime.run("front", "question")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "The expert is unavailable."
    [call] = steps_of(run, "tool_call")
    assert call["ok"] is False
    assert call["result"].startswith("tool 'ask_expert' failed: ChildRunFailed: agent 'expert'")
    assert "bad request" in call["result"]
    child = await stored(runtime, call["child_run_id"])
    assert child.status is RunStatus.FAILED
    assert openai_server.requests[2]["messages"][-1]["content"] == call["result"]


async def test_agents_calling_agents_stop_at_the_depth_limit(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        "loop",
        model=primary(openai_server.url),
        tools=[agent_tool("again", "loop")],
    )
    levels = MAX_AGENT_DEPTH + 1  # depth 0 .. MAX_AGENT_DEPTH each call the tool once
    openai_server.push(*[Reply(tool_calls=[("again", {"query": "deeper"})])] * levels)
    openai_server.push(*[Reply(f"answer {n}") for n in range(levels)])
    runtime = make_runtime()

    run = await runtime.run("loop", "go")

    assert run.status is RunStatus.SUCCEEDED
    chain = [run]
    while (call := steps_of(chain[-1], "tool_call")[0]).get("child_run_id"):
        chain.append(await stored(runtime, call["child_run_id"]))
    assert [r.depth for r in chain] == list(range(MAX_AGENT_DEPTH + 1))
    refused = steps_of(chain[-1], "tool_call")[0]
    assert refused["ok"] is False
    assert f"agent calls nest at most {MAX_AGENT_DEPTH} deep" in refused["result"]
    assert f"run {chain[-1].id} is already at depth {MAX_AGENT_DEPTH}" in refused["result"]
    assert len(openai_server.requests) == 2 * levels


async def test_an_agent_tool_naming_an_unknown_agent_fails_at_build_time(
    openai_server, agents_dir, make_runtime
):
    write_worker(agents_dir, "expert", openai_server.url)
    write_agent(
        agents_dir,
        "front",
        model=primary(openai_server.url),
        tools=[agent_tool("ask", "exprt")],
    )
    with pytest.raises(
        ConfigurationError, match="tool 'ask': agent 'exprt' is not defined; did you mean 'expert'"
    ):
        await make_runtime().get("front")

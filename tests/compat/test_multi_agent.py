"""Supervisor and swarm as upstream's multi-agent docs write them: members are agent tools."""

from __future__ import annotations

from pathlib import Path

from astromesh.config import load_text
from astromesh.runs.state import RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.compat.documents import coordinator_agent, write_team
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.orchestration import steps_of, stored, user_contents


def decide(**decision: str) -> Reply:
    """The supervisor's decision as a call of its ``respond`` tool."""
    return Reply(tool_calls=[("respond", decision)])


async def test_a_supervisor_delegates_to_its_agent_tools_and_answers(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    write_team(tmp_path, openai_server.url, "supervisor")
    openai_server.push(
        # upstream's supervisors name the tool; ours may name the agent: both work
        decide(action="delegate", worker="researcher", task="facts about Io"),
        Reply("Io is volcanic."),
        decide(action="delegate", worker="writing-agent", task="one line on Io"),
        Reply("Io, the volcanic moon."),
        decide(action="finish", answer="Io, the volcanic moon."),
    )

    async with AgentRuntime(tmp_path, env={}, state=MemoryBackend()) as runtime:
        doc = runtime.describe("project-manager")
        run = await runtime.run("project-manager", "Tell me about Io", session_id="s")
        children = [await stored(runtime, c["child_run_id"]) for c in steps_of(run, "tool_call")]
        agent = await runtime.get("project-manager")

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "Io, the volcanic moon."
    assert doc.spec.orchestration.workers == ["research-agent", "writing-agent"]
    assert [(d["worker"], d["task"]) for d in steps_of(run, "delegate")] == [
        ("research-agent", "facts about Io"),
        ("writing-agent", "one line on Io"),
    ]
    assert [(c.agent, c.depth) for c in children] == [("research-agent", 1), ("writing-agent", 1)]
    assert user_contents(openai_server.requests[1]) == ["facts about Io"]
    # the workers are listed with the descriptions their tools give, and the agent's own
    # tools serve the delegations (no second tool per worker)
    system = openai_server.requests[0]["messages"][0]["content"]
    assert "- research-agent: Research a topic and return findings" in system
    assert sorted(t.name for t in agent.tools.available()) == ["researcher", "writer"]


async def test_a_swarm_takes_its_agents_from_its_agent_tools(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    write_team(tmp_path, openai_server.url, "swarm")
    openai_server.push(
        Reply(tool_calls=[("handoff", {"agent": "writing-agent", "reason": "needs prose"})]),
        Reply("Io, the volcanic moon."),
    )

    async with AgentRuntime(tmp_path, env={}, state=MemoryBackend()) as runtime:
        doc = runtime.describe("project-manager")
        run = await runtime.run("project-manager", "A line about Io", session_id="s")

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert doc.spec.orchestration.agents == ["research-agent", "writing-agent"]
    assert run.data["swarm"] == {
        "agent": "writing-agent",
        "trail": ["research-agent", "writing-agent"],
    }
    assert openai_server.requests[0]["messages"][0]["content"].startswith(
        "You are the research-agent."
    )


def test_without_members_or_agent_tools_it_says_what_is_missing() -> None:
    text = coordinator_agent("http://127.0.0.1:9", "supervisor").split("  tools:")[0]

    result = load_text(text, source="pm.agent.yaml", env={})

    [issue] = result.errors
    assert issue.field == "spec.orchestration.pattern"
    assert "needs 'workers'" in issue.message and "tools of type 'agent'" in issue.message

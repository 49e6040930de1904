"""Supervisor end to end: structured decisions, delegation to worker agents, failure paths."""

from __future__ import annotations

import json

import pytest

from astromesh.errors import ConfigurationError
from astromesh.runs.state import RunStatus
from tests.support.model_servers import Reply
from tests.support.orchestration import (
    step_types,
    steps_of,
    stored,
    user_contents,
    write_pattern_agent,
    write_worker,
)


def decide(**decision: str) -> Reply:
    """The supervisor's decision as a call of the ``respond`` tool."""
    return Reply(tool_calls=[("respond", decision)])


@pytest.fixture
def team(agents_dir, openai_server):
    write_worker(agents_dir, "researcher", openai_server.url, description="Finds facts")
    write_worker(agents_dir, "writer", openai_server.url, description="Writes prose")

    def boss(**fields: object) -> None:
        write_pattern_agent(
            agents_dir,
            "boss",
            openai_server.url,
            "supervisor",
            workers=["researcher", "writer"],
            **fields,
        )

    return boss


async def test_delegates_to_workers_then_finishes(team, openai_server, make_runtime, recorder):
    team()
    openai_server.push(
        decide(action="delegate", worker="researcher", task="find facts about Io"),
        Reply("Io is volcanic."),
        decide(action="delegate", worker="writer", task="write one line: Io is volcanic"),
        Reply("Io, the volcanic moon."),
        decide(action="finish", answer="Io, the volcanic moon."),
    )
    runtime = make_runtime()
    run = await runtime.run("boss", "Tell me about Io", session_id="s", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "Io, the volcanic moon."
    assert step_types(run) == [
        "prepare",
        "model_call",
        "delegate",
        "tool_call",
        "model_call",
        "delegate",
        "tool_call",
        "model_call",
    ]
    assert [(d["worker"], d["task"]) for d in steps_of(run, "delegate")] == [
        ("researcher", "find facts about Io"),
        ("writer", "write one line: Io is volcanic"),
    ]
    assert all(s["role"] == "supervisor" for s in steps_of(run, "model_call"))
    # the supervisor is offered only the respond tool, and told who the workers are
    first = openai_server.requests[0]
    assert [t["function"]["name"] for t in first["tools"]] == ["respond"]
    system = first["messages"][0]["content"]
    assert system.startswith("You are Helper.")
    assert "- researcher: Finds facts" in system and "- writer: Writes prose" in system
    # workers are child runs receiving the task; their answers go back to the supervisor
    assert user_contents(openai_server.requests[1]) == ["find facts about Io"]
    assert (
        user_contents(openai_server.requests[2])[-1]
        == "Result from worker 'researcher':\nIo is volcanic."
    )
    children = [await stored(runtime, c["child_run_id"]) for c in steps_of(run, "tool_call")]
    assert [(c.agent, c.depth, c.session_id) for c in children] == [
        ("researcher", 1, "s/researcher"),
        ("writer", 1, "s/writer"),
    ]
    assert recorder.events[-1].data["answer"] == "Io, the volcanic moon."


async def test_a_json_decision_in_text_is_accepted(team, openai_server, make_runtime):
    team()
    openai_server.push(Reply('```json\n{"action": "finish", "answer": "Nothing to do."}\n```'))
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Nothing to do."


async def test_an_invalid_decision_is_retried_once_with_the_error(
    team, openai_server, make_runtime
):
    team()
    openai_server.push(
        Reply("I would ask the researcher."),
        decide(action="finish", answer="Done."),
    )
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Done."
    [invalid] = steps_of(run, "invalid_output")
    assert invalid["error"].startswith("the reply is not JSON")
    retry = openai_server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "I would ask the researcher."}
    assert retry[-1]["role"] == "user"
    assert retry[-1]["content"].startswith("That reply was not valid: the reply is not JSON")


async def test_a_second_invalid_decision_fails_the_run(team, openai_server, make_runtime):
    team()
    openai_server.push(
        decide(action="delegate", worker="researcher"),
        decide(action="delegate", worker="researcher"),
    )
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.FAILED
    assert run.error == (
        "the supervisor's decision was invalid after one retry: "
        "(object): 'delegate' needs both 'worker' and 'task'"
    )
    assert run.steps[-1].data["code"] == "invalid_decision"
    # the invalid respond call was answered with the error as its tool result
    retry = openai_server.requests[1]["messages"]
    assert retry[-1]["role"] == "tool" and "needs both 'worker' and 'task'" in retry[-1]["content"]
    assert len(openai_server.requests) == 2


async def test_an_unknown_worker_is_fed_back_once(team, openai_server, make_runtime):
    team()
    openai_server.push(
        decide(action="delegate", worker="reseacher", task="facts"),
        decide(action="delegate", worker="researcher", task="facts"),
        Reply("Fact."),
        decide(action="finish", answer="Fact."),
    )
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "Fact."
    assert user_contents(openai_server.requests[1])[-1] == (
        "Error: unknown worker 'reseacher'; the workers are: researcher, writer. "
        "Choose one of them."
    )
    assert [d["ok"] for d in steps_of(run, "delegate")] == [False, True]


async def test_a_second_unknown_worker_fails_the_run(team, openai_server, make_runtime):
    team()
    openai_server.push(
        decide(action="delegate", worker="nobody", task="x"),
        decide(action="delegate", worker="ghost", task="x"),
    )
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "unknown_worker"
    assert run.error == (
        "the supervisor chose an unknown worker again: unknown worker 'ghost'; "
        "the workers are: researcher, writer"
    )


async def test_a_failing_worker_is_reported_to_the_supervisor(team, openai_server, make_runtime):
    team()
    openai_server.push(
        decide(action="delegate", worker="researcher", task="facts"),
        Reply("upstream exploded", status=400),
        decide(action="finish", answer="The researcher failed."),
    )
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "The researcher failed."
    feedback = user_contents(openai_server.requests[2])[-1]
    assert feedback.startswith("Worker 'researcher' failed: tool 'researcher' failed: ")
    assert "upstream exploded" in feedback
    assert steps_of(run, "tool_call")[0]["ok"] is False


async def test_max_iterations_bounds_the_delegations(team, openai_server, make_runtime):
    team(max_iterations=2)
    openai_server.push(
        decide(action="delegate", worker="researcher", task="a"),
        Reply("A."),
        decide(action="delegate", worker="researcher", task="b"),
        Reply("B."),
    )
    run = await make_runtime().run("boss", "hi")
    assert run.status is RunStatus.FAILED
    assert run.steps[-1].data["code"] == "max_iterations"
    assert len(openai_server.requests) == 4
    # the partial answer is the supervisor's last message (its decision)
    assert json.loads(run.answer) == {"action": "delegate", "worker": "researcher", "task": "b"}


async def test_the_supervisor_role_is_used_when_declared(
    agents_dir, openai_server, ollama_server, make_runtime
):
    write_worker(agents_dir, "researcher", openai_server.url)
    endpoint = {"provider": "openai_compat", "model": "scripted"}
    write_pattern_agent(
        agents_dir,
        "boss",
        openai_server.url,
        "supervisor",
        workers=["researcher"],
        model={
            "default": {"candidates": [{**endpoint, "endpoint": openai_server.url}]},
            "roles": {
                "supervisor": {
                    "candidates": [
                        {"provider": "ollama", "model": "boss", "endpoint": ollama_server.url}
                    ]
                }
            },
        },
    )
    ollama_server.push(decide(action="finish", answer="from the supervisor role"))
    run = await make_runtime().run("boss", "hi")
    assert run.answer == "from the supervisor role"
    assert [(u.provider, u.role) for u in run.usage.by_model] == [("ollama", "supervisor")]
    assert openai_server.requests == []


async def test_unknown_workers_fail_at_build_time(agents_dir, openai_server, make_runtime):
    write_worker(agents_dir, "researcher", openai_server.url)
    write_pattern_agent(
        agents_dir, "boss", openai_server.url, "supervisor", workers=["researcher", "writter"]
    )
    with pytest.raises(ConfigurationError, match=r"orchestration.workers\[1\]: agent 'writter'"):
        await make_runtime().get("boss")

"""Parity: one scripted conversation, the same run through LocalExecutor and the state machine.

The AWS side is the real definition executed by moto, its Lambda tasks the real handlers in
``functions/`` (fresh imports as cold containers), the runs in SQLite. Both sides must record
the same steps, messages, results, usage, status and answer, and send the model the same
requests.
"""

from __future__ import annotations

from astromesh.executors.results import PREVIEW_LIMIT
from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.base import SessionKey
from tests.support.agents import python_tool
from tests.support.executors import (
    Side,
    comparable,
    run_locally,
    run_on_step_functions,
    script,
)
from tests.support.model_servers import Reply
from tests.support.orchestration import write_worker
from tests.support.stepfunctions import ORCHESTRATION_STEP, TOOL_EXECUTOR, LocalStepFunctions

TOOLS = [
    python_tool("add", "add"),
    python_tool("explode", "explode"),
    {"name": "big_text", "type": "python", "handler": "tests.support.loop_tools:big_text"},
]


async def both(local: Side, aws: Side, sfn: LocalStepFunctions, query: str, **agent: object):
    agent.setdefault("tools", TOOLS)
    for side in (local, aws):
        side.write_agent(**agent)
    here = await run_locally(local, query, session_id="s1")
    there = await run_on_step_functions(aws, sfn, query, session_id="s1")
    assert comparable(there) == comparable(here)
    assert aws.server.requests == local.server.requests
    stored = await aws.state.runs.get(there.id)
    assert comparable(stored) == comparable(there)
    return here, there


async def test_tool_call_then_answer(local_side, aws_side, step_functions):
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
            Reply("The sum is 5.", tokens_in=30, tokens_out=6),
        ],
    )
    here, there = await both(local_side, aws_side, step_functions, "What is 2 + 3?")

    assert there.status is RunStatus.SUCCEEDED and there.answer == "The sum is 5."
    assert [s.type for s in there.steps] == ["prepare", "model_call", "tool_call", "model_call"]
    assert there.steps[2].data["result"] == "5"
    assert (there.usage.tokens_in, there.usage.tokens_out) == (50, 11)
    stages = [
        (i.function, i.event.get("action")) for i in step_functions.invocations if not i.error
    ]
    assert stages == [
        (ORCHESTRATION_STEP, "prepare"),
        (ORCHESTRATION_STEP, "step"),
        (TOOL_EXECUTOR, None),
        (ORCHESTRATION_STEP, "step"),  # observes the call's result, then decides
        (ORCHESTRATION_STEP, "finalize"),
    ]
    # memory written back on both sides: the session's history holds the turn
    assert (await aws_side.state.history.read(_session(there))) == (
        await local_side.state.history.read(_session(here))
    )


async def test_two_parallel_tool_calls(local_side, aws_side, step_functions):
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})]),
            Reply("3 and 7"),
        ],
    )
    _, there = await both(local_side, aws_side, step_functions, "two sums")

    assert [s.data["result"] for s in there.steps if s.type == "tool_call"] == ["3", "7"]
    tool_runs = [i for i in step_functions.invocations if i.function == TOOL_EXECUTOR]
    assert sorted(i.event["call_id"] for i in tool_runs) == ["call_1", "call_2"]
    tool_messages = [m for m in aws_side.server.requests[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [
        ("call_1", "3"),
        ("call_2", "7"),
    ]


async def test_a_failing_tool(local_side, aws_side, step_functions):
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("explode", {"reason": "disk on fire"})]),
            Reply("I could not do it."),
        ],
    )
    _, there = await both(local_side, aws_side, step_functions, "try")

    assert there.status is RunStatus.SUCCEEDED
    assert there.steps[2].data["ok"] is False
    assert there.steps[2].data["result"] == "tool 'explode' failed: ValueError: disk on fire"
    # a tool failure is a result, not a Lambda error: no task failed
    assert [i.error for i in step_functions.invocations] == [
        None
    ] * 5  # prepare, step, the call, step, finalize


async def test_a_large_result_is_kept_by_reference(local_side, aws_side, step_functions):
    size = PREVIEW_LIMIT * 3
    script(
        local_side,
        aws_side,
        replies=[Reply(tool_calls=[("big_text", {"size": size})]), Reply("It was long.")],
    )
    _, there = await both(local_side, aws_side, step_functions, "fetch it")

    # the model saw the whole text (the requests are equal on both sides, see both())...
    sent = aws_side.server.requests[1]["messages"][-1]
    assert sent["role"] == "tool" and len(sent["content"]) == size
    assert sent["content"].endswith("END!")
    # ...while the run holds a preview that refers to the stored result
    kept = there.messages[-2]
    assert kept.content_ref == "call_1" and len(kept.content) < PREVIEW_LIMIT + 200
    assert there.results[0].truncated and there.steps[2].data["result"] == kept.content
    full = await aws_side.state.runs.get_results(there.id, ["call_1"])
    assert len(full["call_1"].content) == size and not full["call_1"].truncated


async def test_max_iterations_ends_both_alike(local_side, aws_side, step_functions):
    script(
        local_side,
        aws_side,
        replies=[
            Reply("Let me add.", tool_calls=[("add", {"a": 1, "b": 1})]),
            Reply("Once more.", tool_calls=[("add", {"a": 2, "b": 2})]),
        ],
    )
    _, there = await both(
        local_side,
        aws_side,
        step_functions,
        "loop",
        orchestration={"pattern": "react", "max_iterations": 2, "timeout_seconds": 30},
    )

    assert there.status is RunStatus.FAILED and there.answer == "Once more."
    assert there.error == "stopped after max_iterations=2 without a final answer"
    assert there.steps[-1].type == "stopped"


async def test_text_protocol(local_side, aws_side, step_functions):
    script(
        local_side,
        aws_side,
        replies=[
            Reply('Thought: add.\nAction: add\nAction Input: {"a": 20, "b": 22}'),
            Reply("Thought: done.\nFinal Answer: It is 42."),
        ],
    )
    _, there = await both(
        local_side,
        aws_side,
        step_functions,
        "20+22?",
        orchestration={"pattern": "react", "tool_calling": "text"},
    )
    assert there.answer == "It is 42."


def _session(run: RunState) -> SessionKey:
    return SessionKey(agent=run.agent, session_id=run.session_id, namespace=run.namespace)


async def test_an_agent_tool_runs_its_child_inside_the_tool_executor(
    local_side, aws_side, step_functions
):
    for side in (local_side, aws_side):
        write_worker(side.agents_dir, "expert", side.server.url, description="Knows astronomy")
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("ask_expert", {"query": "How far is the Moon?"})]),
            Reply("About 384,400 km."),
            Reply("The expert says about 384,400 km."),
        ],
    )
    tools = [{"type": "agent", "name": "ask_expert", "agent": "expert"}]
    _, there = await both(local_side, aws_side, step_functions, "Moon?", tools=tools)

    assert there.answer == "The expert says about 384,400 km."
    [call] = [s.data for s in there.steps if s.type == "tool_call"]
    child = await aws_side.state.runs.get(call["child_run_id"])
    assert (child.parent_run_id, child.depth, child.status) == (there.id, 1, RunStatus.SUCCEEDED)
    assert child.answer == "About 384,400 km."


async def test_a_supervisor_delegates_through_the_state_machine(
    local_side, aws_side, step_functions
):
    for side in (local_side, aws_side):
        write_worker(side.agents_dir, "researcher", side.server.url, description="Finds facts")
        write_worker(side.agents_dir, "writer", side.server.url, description="Writes prose")
    script(
        local_side,
        aws_side,
        replies=[
            Reply(
                tool_calls=[
                    (
                        "respond",
                        {
                            "action": "delegate",
                            "worker": "researcher",
                            "task": "find facts about Io",
                        },
                    )
                ]
            ),
            Reply("Io is volcanic."),
            Reply(
                tool_calls=[
                    (
                        "respond",
                        {
                            "action": "delegate",
                            "worker": "writer",
                            "task": "one line: Io is volcanic",
                        },
                    )
                ]
            ),
            Reply("Io, the volcanic moon."),
            Reply(
                tool_calls=[("respond", {"action": "finish", "answer": "Io, the volcanic moon."})]
            ),
        ],
    )
    _, there = await both(
        local_side,
        aws_side,
        step_functions,
        "Tell me about Io",
        orchestration={
            "pattern": "supervisor",
            "workers": ["researcher", "writer"],
            "max_iterations": 6,
            "timeout_seconds": 30,
        },
    )

    assert there.status is RunStatus.SUCCEEDED and there.answer == "Io, the volcanic moon."
    assert there.pattern_state  # the supervisor's state went through the store between steps


async def test_a_tools_own_model_calls_count_on_both(local_side, aws_side, step_functions):
    """The tool executor runs text_summarize in another process; the summary call it makes
    still reaches the run's usage, through the stored result, as it does in-process."""
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("text_summarize", {"text": "Long text. " * 30})]),
            Reply("Short text.", tokens_in=100, tokens_out=20),  # the tool's own call
            Reply("Summary: short text."),
        ],
    )
    _, there = await both(
        local_side,
        aws_side,
        step_functions,
        "summarise",
        tools=[{"name": "text_summarize", "type": "builtin"}],
    )

    assert there.status is RunStatus.SUCCEEDED
    summary = [line for line in there.usage.by_model if line.role == "summary"]
    assert [(s.calls, s.tokens_in, s.tokens_out) for s in summary] == [(1, 100, 20)]

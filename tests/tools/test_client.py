"""Client tools: the runtime never executes them; a step that calls one pauses the run with
``requires_action`` and ``submit_tool_outputs`` resumes it exactly once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from astromesh.errors import ConflictError, NotFoundError, ValidationFailed
from astromesh.guardrails import GuardrailChain
from astromesh.models.types import Message, ToolCall
from astromesh.orchestration.react import ReActPattern
from astromesh.runs.events import RunEvent
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.stores.memory import MemoryBackend
from astromesh.tools import PythonTool
from astromesh.tools.base import ToolContext
from astromesh.tools.client import (
    ClientTool,
    pause_for_client,
    split_client_calls,
    submit_tool_outputs,
)

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")
# The parts of an Agent that submit_tool_outputs uses: its pattern, and its guardrails
# (a client's outputs are screened like any tool result; none configured here).
AGENT = SimpleNamespace(name="helper", pattern=ReActPattern(), guardrails=GuardrailChain())


def add(a: int, b: int) -> int:
    return a + b


PICK = ClientTool(
    "pick_file",
    description="Let the user pick a file",
    parameters={
        "type": "object",
        "properties": {"kind": {"type": "string"}},
        "required": ["kind"],
    },
)
TOOLS = [PICK, PythonTool("add", add)]
CALLS = [
    ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2}),
    ToolCall(id="c2", name="pick_file", arguments={"kind": "pdf"}),
    ToolCall(id="c3", name="pick_file", arguments={"kind": "png"}),
]


async def test_a_client_tool_is_never_executed_by_the_runtime():
    result = await PICK.call({"kind": "pdf"}, CTX)
    assert not result.ok and "is a client tool" in result.content


def test_split_keeps_the_model_order_and_leaves_bad_or_forbidden_calls_on_the_server():
    bad = ToolCall(id="c4", name="pick_file", arguments={"kind": 3})
    server, client = split_client_calls([*CALLS, bad], TOOLS)
    assert [c.id for c in server] == ["c1", "c4"]
    assert [c.id for c in client] == ["c2", "c3"]
    server, client = split_client_calls(CALLS, [TOOLS[1]])  # pick_file not allowed
    assert [c.id for c in server] == ["c1", "c2", "c3"] and client == []


class Events:
    def __init__(self):
        self.events: list[RunEvent] = []

    async def __call__(self, event):
        self.events.append(event)


async def paused_run(store) -> RunState:
    """A run whose step called add (done) and pick_file twice (left to the caller)."""
    run = await store.runs.create(RunState(agent="helper", query="q"))
    run.messages = [Message.user("q"), Message.assistant("", tool_calls=CALLS)]
    run.results = [ActionResult(call_id="c1", name="add", ok=True, content="3")]
    events = Events()
    await pause_for_client(run, CALLS[1:], events)
    assert run.status is RunStatus.REQUIRES_ACTION
    assert [c.id for c in run.pending_actions] == ["c2", "c3"]
    assert events.events[0].type == "requires_action"
    assert events.events[0].data["tool_calls"][0] == {
        "id": "c2",
        "name": "pick_file",
        "arguments": {"kind": "pdf"},
    }
    assert run.steps[-1].type == "requires_action"
    return await store.runs.save(run)


@pytest.fixture
def store():
    return MemoryBackend()


async def test_outputs_resume_the_run_with_every_result_in_model_order(store):
    run = await paused_run(store)
    resumed: list[RunState] = []

    async def resume(r):
        resumed.append(r)
        return r

    events = Events()
    outputs = [
        {"tool_call_id": "c3", "output": {"path": "/tmp/a.png"}},
        {"tool_call_id": "c2", "output": "report.pdf"},
    ]
    done = await submit_tool_outputs(
        run.id, outputs, runs=store.runs, agent=AGENT, resume=resume, emit=events
    )
    assert resumed == [done] and done.status is RunStatus.RUNNING
    tool_messages = [m for m in done.messages if m.role == "tool"]
    assert [(m.tool_call_id, m.content) for m in tool_messages] == [
        ("c1", "3"),
        ("c2", "report.pdf"),
        ("c3", '{"path": "/tmp/a.png"}'),
    ]
    assert done.pending_actions == [] and done.iteration == 1
    client_steps = [s.data for s in done.steps if s.type == "tool_call"]
    assert [(s["id"], s["client"]) for s in client_steps] == [("c2", True), ("c3", True)]
    assert [e.type for e in events.events] == ["tool_result", "tool_result"]
    stored = await store.runs.get(run.id)
    assert stored.version == done.version and stored.status is RunStatus.RUNNING


async def test_failed_outputs_reach_the_model_as_failures(store):
    run = await paused_run(store)
    done = await submit_tool_outputs(
        run.id,
        [
            {"tool_call_id": "c2", "output": "user cancelled", "ok": False},
            {"tool_call_id": "c3", "output": "x.png"},
        ],
        runs=store.runs,
        agent=AGENT,
        resume=lambda r: asyncio.sleep(0, r),
    )
    assert done.results[1].ok is False and done.results[1].content == "user cancelled"


@pytest.mark.parametrize(
    ("outputs", "words"),
    [
        ([{"tool_call_id": "c2", "output": "a"}], "missing outputs for tool calls c3"),
        (
            [
                {"tool_call_id": "c2", "output": "a"},
                {"tool_call_id": "c2", "output": "b"},
                {"tool_call_id": "c3", "output": "c"},
            ],
            "two outputs for tool call 'c2'",
        ),
        (
            [
                {"tool_call_id": "c1", "output": "forged"},
                {"tool_call_id": "c2", "output": "a"},
                {"tool_call_id": "c3", "output": "c"},
            ],
            "no pending tool call has id 'c1'",
        ),
        (
            [{"tool_call_id": "c2", "output": "x" * 1_000_001}, {"tool_call_id": "c3"}],
            "longer than",
        ),
    ],
)
async def test_outputs_must_answer_each_pending_call_exactly_once(store, outputs, words):
    run = await paused_run(store)
    with pytest.raises(ValidationFailed, match=words):
        await submit_tool_outputs(
            run.id, outputs, runs=store.runs, agent=AGENT, resume=lambda r: asyncio.sleep(0, r)
        )
    assert (await store.runs.get(run.id)).status is RunStatus.REQUIRES_ACTION


async def test_only_a_paused_run_accepts_outputs(store):
    run = await store.runs.create(RunState(agent="helper", query="q"))
    with pytest.raises(ConflictError, match="not waiting for tool outputs"):
        await submit_tool_outputs(run.id, [], runs=store.runs, agent=AGENT, resume=None)
    with pytest.raises(NotFoundError):
        await submit_tool_outputs("run_missing", [], runs=store.runs, agent=AGENT, resume=None)


async def test_two_racing_submissions_resume_the_run_once(store):
    run = await paused_run(store)
    outputs = [{"tool_call_id": "c2", "output": "a"}, {"tool_call_id": "c3", "output": "b"}]
    resumed = []

    async def resume(r):
        resumed.append(r.id)
        return r

    results = await asyncio.gather(
        *(
            submit_tool_outputs(run.id, outputs, runs=store.runs, agent=AGENT, resume=resume)
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, RunState) for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == 1
    assert resumed == [run.id]

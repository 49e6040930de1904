"""``tool_results`` guardrails on the Step Functions path: the same screening as in-process.

On the state machine a tool runs in the ``tool_executor`` function, which stores its result
beside the run, and ``observe`` (another function, maybe another container) records it. The
result must be screened in the tool executor, before it is stored, and nowhere else: these
runs go through moto's execution of the real definition with the real handlers, and are
compared field by field with the same conversation run by the LocalExecutor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from astromesh.executors.driver import StepDriver, folder_agents
from astromesh.executors.results import PREVIEW_LIMIT
from astromesh.guardrails.chain import WITHHELD_MESSAGE
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.runtime.conftest import Recorder
from tests.support.agents import primary, python_tool, write_agent
from tests.support.executors import (
    Side,
    comparable,
    run_locally,
    run_on_step_functions,
    script,
)
from tests.support.leaky_tools import EMAIL, FORBIDDEN
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.orchestration import write_worker
from tests.support.spans import recorded_spans
from tests.support.stepfunctions import TOOL_EXECUTOR, LocalStepFunctions

TOOLS = [
    python_tool("add", "add"),
    {"name": "crm_lookup", "type": "python", "handler": "tests.support.leaky_tools:crm_lookup"},
    {"name": "fetch_page", "type": "python", "handler": "tests.support.leaky_tools:fetch_page"},
    {"name": "crm_export", "type": "python", "handler": "tests.support.leaky_tools:crm_export"},
]
GUARDS = {
    "tool_results": [
        {"type": "pii_detection", "action": "redact", "entities": ["email", "phone"]},
        {"type": "content_filter", "forbidden_keywords": [FORBIDDEN]},
    ]
}
REDACTED_RECORD = "C-7: Ana Lopez, [EMAIL], [PHONE], premium plan"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of every stage, the Lambda handlers' included (they share the tracing module)."""
    with recorded_spans() as exporter:
        yield exporter


def screenings(exporter: InMemorySpanExporter) -> list[str]:
    """The tools whose results were screened, one entry per screening; then forget them."""
    tools = [
        str(s.attributes["astromesh.tool"])
        for s in exporter.get_finished_spans()
        if s.name == "astromesh.screen_tool_result"
    ]
    exporter.clear()
    return sorted(tools)


def tool_messages(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


async def both(
    local: Side, aws: Side, sfn: LocalStepFunctions, spans: InMemorySpanExporter, query: str
) -> tuple[RunState, RunState, list[str]]:
    """The run on each side, checked equal; and the tools screened on the AWS side."""
    for side in (local, aws):
        side.write_agent(tools=TOOLS, guardrails=GUARDS)
    here = await run_locally(local, query, session_id="s1")
    screened_here = screenings(spans)
    there = await run_on_step_functions(aws, sfn, query, session_id="s1")
    screened_there = screenings(spans)
    assert screened_there == screened_here, "each result screened once, on both sides"
    assert comparable(there) == comparable(here)
    assert aws.server.requests == local.server.requests
    assert comparable(await aws.state.runs.get(there.id)) == comparable(there)
    return here, there, screened_there


async def test_redaction_on_the_state_machine(local_side, aws_side, step_functions, spans):
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("crm_lookup", {"customer": "C-7"}), ("add", {"a": 2, "b": 3})]),
            Reply("Ana is on the premium plan."),
        ],
    )
    _, there, screened = await both(local_side, aws_side, step_functions, spans, "who is C-7?")

    assert there.status is RunStatus.SUCCEEDED, there.error
    assert screened == ["add", "crm_lookup"]  # once each, in the tool executor
    assert tool_messages(aws_side.server.requests[1]) == [REDACTED_RECORD, "5"]
    assert [(s.type, s.data.get("name")) for s in there.steps][2:5] == [
        ("tool_call", "crm_lookup"),
        ("guardrail", "pii_detection"),
        ("tool_call", "add"),
    ]
    assert (
        there.steps[3].data["side"] == "tool_result" and there.steps[3].data["action"] == "redact"
    )
    # what the tool executor stored is already redacted (observe reads it back from there)
    kept = await aws_side.state.runs.get_results(there.id, ["call_1"])
    assert kept["call_1"].content == REDACTED_RECORD
    assert kept["call_1"].guardrails[0]["name"] == "pii_detection"
    tool_tasks = [i for i in step_functions.invocations if i.function == TOOL_EXECUTOR]
    assert len(tool_tasks) == 2 and all(i.error is None for i in tool_tasks)
    stored = await aws_side.state.runs.get(there.id)
    assert EMAIL not in stored.model_dump_json()


async def test_a_blocked_result_on_the_state_machine(local_side, aws_side, step_functions, spans):
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("fetch_page", {"url": "https://example.org/a"})]),
            Reply("I could not read it."),
        ],
    )
    _, there, _ = await both(local_side, aws_side, step_functions, spans, "read it")

    withheld = WITHHELD_MESSAGE.format(tool="fetch_page", guardrail="content_filter")
    assert there.status is RunStatus.SUCCEEDED and there.answer == "I could not read it."
    assert tool_messages(aws_side.server.requests[1]) == [withheld]
    kept = await aws_side.state.runs.get_results(there.id, ["call_1"])
    for text in (
        json.dumps(aws_side.server.requests),
        (await aws_side.state.runs.get(there.id)).model_dump_json(),
        kept["call_1"].model_dump_json(),
    ):
        assert FORBIDDEN not in text and "enrich" not in text


async def test_a_large_result_is_stored_redacted_on_the_state_machine(
    local_side, aws_side, step_functions, spans
):
    script(
        local_side,
        aws_side,
        replies=[Reply(tool_calls=[("crm_export", {"rows": 400})]), Reply("Exported.")],
    )
    _, there, _ = await both(local_side, aws_side, step_functions, spans, "export")

    [sent] = tool_messages(aws_side.server.requests[1])
    assert len(sent) > PREVIEW_LIMIT and sent.endswith("last row: [EMAIL], [PHONE]\n")
    assert there.results[0].truncated and there.messages[-2].content_ref == "call_1"
    kept = await aws_side.state.runs.get_results(there.id, ["call_1"])
    assert kept["call_1"].content == sent


async def test_a_child_agents_answer_is_screened_and_its_id_still_recorded(
    local_side, aws_side, step_functions, spans
):
    for side in (local_side, aws_side):
        write_worker(side.agents_dir, "expert", side.server.url, description="Knows people")
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("ask_expert", {"query": "How do I reach Ana?"})]),
            Reply(f"Write to {EMAIL}."),
            Reply("The expert gave an address."),
        ],
    )
    for side in (local_side, aws_side):
        side.write_agent(
            tools=[{"type": "agent", "name": "ask_expert", "agent": "expert"}], guardrails=GUARDS
        )
    here = await run_locally(local_side, "reach Ana", session_id="s1")
    there = await run_on_step_functions(aws_side, step_functions, "reach Ana", session_id="s1")
    assert comparable(there) == comparable(here)

    assert tool_messages(aws_side.server.requests[2]) == ["Write to [EMAIL]."]
    [call] = [s.data for s in there.steps if s.type == "tool_call"]
    child = await aws_side.state.runs.get(call["child_run_id"])
    assert child.parent_run_id == there.id  # found although a guardrail step follows the call


async def test_the_step_driver_emits_screened_tool_result_frames(tmp_path: Path):
    """On AWS a channel may push the tool executor's events: they carry the screened text."""
    recorder = Recorder()
    with ScriptedOpenAIServer() as server:
        write_agent(tmp_path / "agents", model=primary(server.url), tools=TOOLS, guardrails=GUARDS)
        server.push(Reply(tool_calls=[("crm_lookup", {"customer": "C-7"})]), Reply("Done."))
        backend = MemoryBackend()
        runtime = AgentRuntime(tmp_path / "agents", env={}, state=backend)
        try:
            driver = StepDriver(backend.runs, folder_agents(runtime.get), emit=recorder)
            run = await backend.runs.create(RunState(agent="helper", query="who is C-7?"))
            await driver.prepare(run.id)
            answer = await driver.step(run.id)
            acted = [await driver.act(run.id, a["call_id"]) for a in answer["actions"]]
            await driver.observe(run.id, acted)
            assert (await driver.step(run.id))["next"] == "finish"
            await driver.finalize(run.id)
        finally:
            await runtime.close()
    frames = [e.data for e in recorder.events if e.type == "tool_result"]
    assert [(f["ok"], f["content"]) for f in frames] == [(True, REDACTED_RECORD)]
    assert tool_messages(server.requests[1]) == [REDACTED_RECORD]

"""One trace per run on the Step Functions parity harness: the real handlers, each task a
separate Lambda invocation (prepare, step, the tool executor, observe, finalize), continue
the trace the run record carries; the spans each produced are read back from the store."""

from __future__ import annotations

from astromesh.runs.state import RunStatus
from tests.support.agents import python_tool
from tests.support.executors import run_on_step_functions, script
from tests.support.model_servers import Reply
from tests.support.stepfunctions import TOOL_EXECUTOR


async def test_one_trace_across_the_handlers(local_side, aws_side, step_functions, exported):
    aws_side.write_agent(tools=[python_tool("add", "add")])
    script(
        local_side,
        aws_side,
        replies=[
            Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
            Reply("The sum is 5.", tokens_in=30, tokens_out=6),
        ],
    )

    run = await run_on_step_functions(aws_side, step_functions, "What is 2 + 3?")

    assert run.status is RunStatus.SUCCEEDED
    assert any(i.function == TOOL_EXECUTOR for i in step_functions.invocations)
    stored = await aws_side.state.runs.get(run.id)
    kept = {s["span_id"]: s for s in stored.trace.spans}
    names = sorted(s["name"] for s in kept.values())
    for name in (
        "invoke_agent helper",
        "astromesh.prepare",
        "execute_tool add",
        "astromesh.observe",
        "astromesh.finalize",
        "astromesh.screen_input",
    ):
        assert name in names, names
    assert names.count("chat scripted") == 2 and names.count("astromesh.step") == 2
    # one tree: every span's parent is kept, except the root's (none: no caller's trace)
    root = next(s for s in kept.values() if s["name"] == "invoke_agent helper")
    assert root["span_id"] == stored.trace.span_id and root["parent_span_id"] is None
    for span in kept.values():
        if span is not root:
            assert span["parent_span_id"] in kept, span["name"]
    tool = next(s for s in kept.values() if s["name"] == "execute_tool add")
    assert kept[tool["parent_span_id"]]["name"] == "astromesh.act"  # in the tool executor
    assert kept[kept[tool["parent_span_id"]]["parent_span_id"]] is root
    # and the exporter saw one trace id, the run's, from every handler
    assert {s.context.trace_id for s in exported.all()} == {int(stored.trace.trace_id, 16)}
    assert stored.results == [] or all(not r.spans for r in stored.results)

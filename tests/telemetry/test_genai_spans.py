"""A ReAct run with a tool, as the SDK's in-memory exporter and the run document see it: one
trace, the GenAI conventions' spans in a tree, their attributes."""

from __future__ import annotations

from astromesh.runs.state import RunStatus
from astromesh.runs.trace_views import trace_document
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply
from tests.support.orchestration import write_worker


async def test_react_run_with_a_tool_makes_the_genai_span_tree(
    openai_server, agents_dir, make_runtime, exported
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
        Reply("The sum is 5.", tokens_in=30, tokens_out=6),
    )
    runtime = make_runtime()

    run = await runtime.run("helper", "What is 2 + 3?", session_id="s1")

    assert run.status is RunStatus.SUCCEEDED
    spans = exported.all()
    by_id = {s.context.span_id: s for s in spans}
    assert {s.context.trace_id for s in spans} == {int(run.trace.trace_id, 16)}
    root = exported.one("invoke_agent helper")
    assert root.parent is None
    assert f"{root.context.span_id:016x}" == run.trace.span_id
    attrs = root.attributes
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "helper"
    assert attrs["gen_ai.conversation.id"] == "s1"
    assert attrs["gen_ai.provider.name"] == "openai_compat"
    assert attrs["gen_ai.request.model"] == "scripted"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (50, 11)
    assert attrs["astromesh.run.id"] == run.id and "astromesh.cost.usd" in attrs

    def parent_name(span):
        return by_id[span.parent.span_id].name if span.parent else None

    chats = exported.named("chat ")
    assert [c.name for c in chats] == ["chat scripted", "chat scripted"]
    assert {parent_name(c) for c in chats} == {"astromesh.step"}
    first = chats[0].attributes
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.request.model"] == "scripted" == first["gen_ai.response.model"]
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (20, 5)
    assert "gen_ai.input.messages" not in first  # content only when opted in

    tool = exported.one("execute_tool add")
    assert parent_name(tool) == "astromesh.act"
    assert tool.attributes["gen_ai.tool.name"] == "add"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    assert "gen_ai.tool.call.arguments" not in tool.attributes
    for name in (
        "astromesh.prepare",
        "astromesh.step",
        "astromesh.act",
        "astromesh.observe",
        "astromesh.finalize",
        "astromesh.screen_input",
        "astromesh.memory.recall",
    ):
        assert any(s.name == name for s in spans), name
    assert parent_name(exported.one("astromesh.prepare")) == "invoke_agent helper"
    assert parent_name(exported.one("astromesh.memory.recall")) == "astromesh.prepare"

    # the same spans are kept with the run, in the store
    stored = await (await runtime.state()).runs.get(run.id)
    kept = {s["span_id"]: s for s in stored.trace.spans}
    assert kept.keys() == {f"{s.context.span_id:016x}" for s in spans}
    kept_tool = next(s for s in kept.values() if s["name"] == "execute_tool add")
    assert kept[kept_tool["parent_span_id"]]["name"] == "astromesh.act"


async def test_a_child_run_continues_its_parents_trace(openai_server, agents_dir, make_runtime):
    write_worker(agents_dir, "expert", openai_server.url)
    write_agent(
        agents_dir,
        "front",
        model=primary(openai_server.url),
        tools=[{"type": "agent", "name": "ask_expert", "agent": "expert"}],
    )
    openai_server.push(
        Reply(tool_calls=[("ask_expert", {"query": "How far is the Moon?"})]),
        Reply("About 384,400 km."),
        Reply("The expert says about 384,400 km."),
    )
    runtime = make_runtime()
    run = await runtime.run("front", "Moon distance?")

    runs = (await runtime.state()).runs
    [child_id] = [s.data["child_run_id"] for s in run.steps if s.type == "tool_call"]
    child = await runs.get(child_id)
    assert child.trace.trace_id == run.trace.trace_id
    parent_spans = {s["span_id"]: s for s in run.trace.spans}
    # the child's root hangs under the parent's execute_tool span
    assert parent_spans[child.trace.parent_span_id]["name"] == "execute_tool ask_expert"
    document = await trace_document(run, runs.get)
    assert [r["run_id"] for r in document["runs"]] == [run.id, child.id]
    [root] = document["spans"]

    def names(span: dict) -> list[str]:
        return [span["name"], *(n for c in span["children"] for n in names(c))]

    flat = names(root)
    assert flat.index("execute_tool ask_expert") < flat.index("invoke_agent expert")
    assert document["span_count"] == len(run.trace.spans) + len(child.trace.spans)

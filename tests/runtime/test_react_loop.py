"""The ReAct loop end to end: runtime -> pipeline -> pattern -> real HTTP model servers -> tools."""

from __future__ import annotations

import pytest

from astromesh.runs.state import RunStatus
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


@pytest.fixture(params=["openai_compat", "ollama"])
def server(request, openai_server, ollama_server):
    """Each loop test runs against both HTTP protocols."""
    return (openai_server if request.param == "openai_compat" else ollama_server), request.param


async def test_tool_call_then_answer(server, agents_dir, make_runtime, recorder):
    srv, provider = server
    write_agent(agents_dir, model=primary(srv.url, provider), tools=[python_tool("add", "add")])
    srv.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
        Reply("The sum is 5.", tokens_in=30, tokens_out=6),
    )
    runtime = make_runtime()

    run = await runtime.run("helper", "What is 2 + 3?", session_id="s1", on_event=recorder)

    assert run.status is RunStatus.SUCCEEDED
    assert run.answer == "The sum is 5."
    assert [s.type for s in run.steps] == ["prepare", "model_call", "tool_call", "model_call"]
    tool_step = run.steps[2].data
    assert (tool_step["name"], tool_step["arguments"], tool_step["ok"], tool_step["result"]) == (
        "add",
        {"a": 2, "b": 3},
        True,
        "5",
    )
    # the tool result went back to the model in the protocol's tool message
    second = srv.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "5"
    assert second[0] == {"role": "system", "content": "You are Helper."}
    # the model was offered the tool with the schema derived from the type hints
    offered = srv.requests[0]["tools"][0]["function"]
    assert offered["name"] == "add" and offered["parameters"]["required"] == ["a", "b"]
    # usage summed over both calls, one by_model line
    assert (run.usage.tokens_in, run.usage.tokens_out) == (50, 11)
    [line] = run.usage.by_model
    assert (line.provider, line.model, line.calls, line.role) == (
        provider,
        "scripted",
        2,
        "default",
    )
    # the stream: status first, the tool call and its result, tokens, then done
    types = recorder.types()
    assert types[0] == "status" and types[-1] == "done"
    assert types.index("tool_call") < types.index("tool_result") < types.index("token")
    assert recorder.tokens() == "The sum is 5."
    assert recorder.events[-1].data["answer"] == "The sum is 5."
    # persisted as it finished
    stored = await (await runtime.state()).runs.get(run.id)
    assert stored.status is RunStatus.SUCCEEDED and stored.answer == run.answer
    assert [s.type for s in stored.steps] == [s.type for s in run.steps]
    assert stored.version == run.version


async def test_conversation_memory_carries_over_within_a_session(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        memory={
            "conversational": {"backend": "sqlite", "strategy": "sliding_window", "max_turns": 1}
        },
    )
    openai_server.push(Reply("Hi Ada."), Reply("You are Ada."), Reply("Who?"), Reply("Still Ada."))
    runtime = make_runtime()

    await runtime.run("helper", "I am Ada.", session_id="s1")
    await runtime.run("helper", "Who am I?", session_id="s1")
    await runtime.run("helper", "Who am I?", session_id="other")
    await runtime.run("helper", "And now?", session_id="s1")

    contents = [[m["content"] for m in r["messages"]] for r in openai_server.requests]
    assert contents[1] == ["You are Helper.", "I am Ada.", "Hi Ada.", "Who am I?"]
    assert contents[2] == ["You are Helper.", "Who am I?"]  # another session sees nothing
    # max_turns=1 keeps only the latest question/answer pair
    assert contents[3] == ["You are Helper.", "Who am I?", "You are Ada.", "And now?"]


async def test_parallel_tool_calls_run_concurrently(openai_server, agents_dir, make_runtime):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("rendezvous", "rendezvous")],
    )
    openai_server.push(
        Reply(tool_calls=[("rendezvous", {"name": "a"}), ("rendezvous", {"name": "b"})]),
        Reply("done"),
    )
    run = await make_runtime().run("helper", "meet")
    results = [s.data["result"] for s in run.steps if s.type == "tool_call"]
    assert results == ["together", "together"]
    tool_messages = [m for m in openai_server.requests[1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_1", "call_2"]


async def test_a_failing_tool_is_reported_to_the_model(openai_server, agents_dir, make_runtime):
    write_agent(
        agents_dir, model=primary(openai_server.url), tools=[python_tool("explode", "explode")]
    )
    openai_server.push(
        Reply(tool_calls=[("explode", {"reason": "disk on fire"})]), Reply("I could not do it.")
    )
    run = await make_runtime().run("helper", "try")
    assert run.status is RunStatus.SUCCEEDED
    assert openai_server.requests[1]["messages"][-1]["content"] == (
        "tool 'explode' failed: ValueError: disk on fire"
    )
    assert run.steps[2].data["ok"] is False


async def test_bad_arguments_go_back_to_the_model_to_correct(
    openai_server, agents_dir, make_runtime
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": "two", "b": 3})]),
        Reply(tool_calls=[("add", {"a": 2, "b": 3})]),
        Reply("5"),
    )
    run = await make_runtime().run("helper", "2+3")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "5"
    first_result = openai_server.requests[1]["messages"][-1]["content"]
    assert first_result.startswith("invalid arguments for tool 'add': a: 'two' is not of type")
    assert [s.data["ok"] for s in run.steps if s.type == "tool_call"] == [False, True]


async def test_a_forbidden_tool_is_never_offered_and_a_forged_call_is_refused(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("add", "add"), python_tool("explode", "explode")],
        permissions={"allowed_actions": ["add"]},
    )
    openai_server.push(Reply(tool_calls=[("explode", {"reason": "x"})]), Reply("ok"))
    run = await make_runtime().run("helper", "go")
    assert [t["function"]["name"] for t in openai_server.requests[0]["tools"]] == ["add"]
    refused = run.steps[2].data
    assert refused["ok"] is False and refused["permitted"] is False
    assert refused["result"] == "tool 'explode' is not permitted for this agent"


async def test_max_iterations_ends_the_run_with_its_partial_answer(
    openai_server, agents_dir, make_runtime, recorder
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("add", "add")],
        orchestration={"pattern": "react", "max_iterations": 2},
    )
    openai_server.push(
        Reply("Let me add.", tool_calls=[("add", {"a": 1, "b": 1})]),
        Reply("Once more.", tool_calls=[("add", {"a": 2, "b": 2})]),
    )
    run = await make_runtime().run("helper", "loop", on_event=recorder)
    assert run.status is RunStatus.FAILED
    assert run.error == "stopped after max_iterations=2 without a final answer"
    assert run.answer == "Once more."
    assert run.steps[-1].type == "stopped" and run.steps[-1].data["code"] == "max_iterations"
    assert len(openai_server.requests) == 2
    assert recorder.types()[-2:] == ["error", "done"]


async def test_timeout_ends_the_run_as_timed_out(openai_server, agents_dir, make_runtime):
    write_agent(
        agents_dir,
        model=primary(openai_server.url, timeout_seconds=30),
        orchestration={"pattern": "react", "timeout_seconds": 0.5},
    )
    openai_server.push(Reply("too late", delay=3))
    run = await make_runtime().run("helper", "slow?")
    assert run.status is RunStatus.TIMED_OUT
    assert run.error == "stopped after timeout_seconds=0.5"


async def test_unreachable_provider_fails_the_run_cleanly(
    closed_port_url, agents_dir, make_runtime
):
    write_agent(agents_dir, model=primary(closed_port_url + "/v1"))
    run = await make_runtime().run("helper", "hello")
    assert run.status is RunStatus.FAILED
    assert run.error.startswith("openai_compat/scripted: every candidate failed:")
    assert "connect" in run.error.lower()


async def test_fallback_candidate_answers_when_the_primary_is_down(
    closed_port_url, ollama_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model={
            "primary": {"provider": "openai_compat", "model": "down", "endpoint": closed_port_url},
            "fallback": [{"provider": "ollama", "model": "backup", "endpoint": ollama_server.url}],
        },
    )
    ollama_server.push(Reply("from the fallback"))
    run = await make_runtime().run("helper", "hello")
    assert run.status is RunStatus.SUCCEEDED and run.answer == "from the fallback"
    assert [(u.provider, u.model) for u in run.usage.by_model] == [("ollama", "backup")]


async def test_text_protocol_for_models_without_native_tools(
    openai_server, agents_dir, make_runtime, recorder
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("add", "add")],
        orchestration={"pattern": "react", "tool_calling": "text"},
    )
    openai_server.push(
        Reply('Thought: I should add.\nAction: add\nAction Input: {"a": 20, "b": 22}'),
        Reply("Thought: I know it.\nFinal Answer: It is 42."),
    )
    run = await make_runtime().run("helper", "20+22?", on_event=recorder)
    assert run.status is RunStatus.SUCCEEDED and run.answer == "It is 42."
    first = openai_server.requests[0]
    assert "tools" not in first
    assert "Action Input:" in first["messages"][0]["content"]
    assert first["messages"][0]["content"].startswith("You are Helper.")
    assert openai_server.requests[1]["messages"][-1] == {
        "role": "user",
        "content": "Observation: 42",
    }
    assert recorder.tokens() == "It is 42."  # thoughts and actions never reach the user


async def test_a_cancel_stops_the_run_before_its_next_tool_calls(
    openai_server, agents_dir, make_runtime, recorder
):
    """The cancel lands while the first tool runs; the checkpoint after it is written behind
    the second model call and loses to the cancel, which stops the run before the second
    call's tools run. That model call is recorded with the cancelled run."""
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2})]),
        Reply(tool_calls=[("add", {"a": 3, "b": 4})]),
        Reply("never asked"),
    )
    runtime = make_runtime()
    runs = (await runtime.state()).runs

    async def cancel_during_tool(event):
        await recorder(event)
        if event.type == "tool_call":
            stored = await runs.get(recorder.events[0].data["run_id"])
            stored.status = RunStatus.CANCELLED
            await runs.save(stored)

    run = await runtime.run("helper", "add", on_event=cancel_during_tool)
    assert run.status is RunStatus.CANCELLED
    assert len(openai_server.requests) == 2
    assert recorder.types().count("tool_call") == 1
    stored = await runs.get(run.id)
    assert stored.status is RunStatus.CANCELLED
    assert [s.type for s in stored.steps] == [
        "prepare",
        "model_call",
        "tool_call",
        "model_call",
        "stopped",
    ]
    assert stored.steps[-1].data["code"] == "cancelled"


async def test_a_sandboxed_prompt_cannot_reach_python_internals(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        prompts={"system": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
    )
    run = await make_runtime().run("helper", "hi")
    assert run.status is RunStatus.FAILED
    assert "cannot render" in run.error and "unsafe" in run.error
    assert openai_server.requests == []


async def test_prompt_variables_and_request_context(openai_server, agents_dir, make_runtime):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        prompts={"system": "Agent {{ agent.name }} v{{ agent.version }} for {{ context.user }}."},
    )
    openai_server.push(Reply("ok"))
    await make_runtime().run("helper", "hi", context={"user": "Ada"})
    assert openai_server.requests[0]["messages"][0]["content"] == "Agent helper v1.0.0 for Ada."


async def test_a_stopped_run_never_returns_an_earlier_turns_answer(
    openai_server, agents_dir, make_runtime
):
    write_agent(
        agents_dir,
        model=primary(openai_server.url),
        tools=[python_tool("add", "add")],
        orchestration={"pattern": "react", "max_iterations": 1},
    )
    openai_server.push(Reply("First answer."), Reply(tool_calls=[("add", {"a": 1, "b": 1})]))
    runtime = make_runtime()
    await runtime.run("helper", "one", session_id="s")
    stopped = await runtime.run("helper", "two", session_id="s")
    assert stopped.status is RunStatus.FAILED
    assert stopped.answer == ""  # not "First answer.", which came from the recalled history

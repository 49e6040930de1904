"""Whether a run's model calls stream follows whether its sink shows tokens.

A sink that shows tokens (the CLI, SSE, WebSocket) gets them as generated; a run nobody
listens to (``discard``: REST, Step Functions, child runs) or whose sink is a
:class:`WithoutTokens` asks each model for its whole answer instead. The run itself (answer,
steps, usage, events other than tokens) is the same either way.
"""

from __future__ import annotations

from typing import Any

import pytest

from astromesh.runs.events import RunEvent, WithoutTokens, discard, wants_tokens
from astromesh.runs.state import RunStatus
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


@pytest.fixture(params=["openai_compat", "ollama"])
def server(request: pytest.FixtureRequest, openai_server: Any, ollama_server: Any) -> Any:
    return (openai_server if request.param == "openai_compat" else ollama_server), request.param


def script(srv: Any) -> None:
    srv.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
        Reply("The sum is 5.", tokens_in=30, tokens_out=6),
    )


def test_only_without_tokens_sinks_refuse_tokens(recorder: Any) -> None:
    async def plain(event: RunEvent) -> None:
        pass

    assert wants_tokens(recorder) and wants_tokens(plain)
    assert not wants_tokens(discard)
    assert not wants_tokens(WithoutTokens(recorder))


async def test_without_tokens_passes_every_other_event(recorder: Any) -> None:
    sink = WithoutTokens(recorder)

    for kind in ("status", "token", "tool_call", "tool_result", "token", "done"):
        await sink(RunEvent(kind, {}))
    await discard(RunEvent("done", {}))

    assert recorder.types() == ["status", "tool_call", "tool_result", "done"]


async def test_a_listening_sink_gets_streamed_tokens(
    server: Any, agents_dir: Any, make_runtime: Any, recorder: Any
) -> None:
    srv, provider = server
    write_agent(agents_dir, model=primary(srv.url, provider), tools=[python_tool("add", "add")])
    script(srv)

    run = await make_runtime().run("helper", "What is 2 + 3?", on_event=recorder)

    assert run.answer == "The sum is 5."
    assert [request["stream"] for request in srv.requests] == [True, True]
    assert recorder.tokens() == "The sum is 5."
    assert len([e for e in recorder.events if e.type == "token"]) > 1  # piece by piece


@pytest.mark.parametrize("listener", ["none", "without_tokens"])
async def test_nobody_reading_tokens_asks_for_whole_answers(
    server: Any, agents_dir: Any, make_runtime: Any, recorder: Any, listener: str
) -> None:
    srv, provider = server
    write_agent(agents_dir, model=primary(srv.url, provider), tools=[python_tool("add", "add")])
    script(srv)
    sink = WithoutTokens(recorder) if listener == "without_tokens" else None

    run = await make_runtime().run("helper", "What is 2 + 3?", on_event=sink)

    assert run.status is RunStatus.SUCCEEDED
    assert run.answer == "The sum is 5."
    assert [request["stream"] for request in srv.requests] == [False, False]
    assert [s.type for s in run.steps] == ["prepare", "model_call", "tool_call", "model_call"]
    assert (run.usage.tokens_in, run.usage.tokens_out) == (50, 11)
    assert run.steps[1].data["finish_reason"] == "tool_calls"
    assert run.steps[3].data["content"] == "The sum is 5."
    if listener == "without_tokens":
        assert recorder.types() == ["status", "tool_call", "tool_result", "done"]
        assert recorder.events[-1].data["answer"] == "The sum is 5."


async def test_output_guardrails_ask_for_a_whole_answer_even_with_a_listener(
    openai_server: Any, agents_dir: Any, make_runtime: Any, recorder: Any
) -> None:
    guards = {"output": [{"type": "pii_detection", "action": "redact"}]}
    write_agent(agents_dir, model=primary(openai_server.url), guardrails=guards)
    openai_server.push(Reply("Mail me at boss@example.com today."))

    run = await make_runtime().run("helper", "hi", on_event=recorder)

    assert run.answer == "Mail me at [EMAIL] today."
    assert openai_server.requests[0]["stream"] is False
    assert [e.data["content"] for e in recorder.events if e.type == "token"] == [run.answer]


async def test_the_text_protocol_streams_only_its_answer_and_only_when_heard(
    ollama_server: Any, agents_dir: Any, make_runtime: Any, recorder: Any
) -> None:
    """``tool_calling: text`` filters the streamed text to the answer; unheard, the same
    answer comes whole."""
    write_agent(
        agents_dir,
        model=primary(ollama_server.url, "ollama"),
        tools=[python_tool("add", "add")],
        orchestration={
            "pattern": "react",
            "max_iterations": 5,
            "timeout_seconds": 30,
            "tool_calling": "text",
        },
    )
    runtime = make_runtime()
    for sink in (recorder, None):
        ollama_server.push(
            Reply('Thought: add.\nAction: add\nAction Input: {"a": 2, "b": 3}'),
            Reply("Thought: done.\nFinal Answer: 5"),
        )
        run = await runtime.run("helper", "2 + 3?", on_event=sink)
        assert run.answer == "5"

    assert [request["stream"] for request in ollama_server.requests] == [True, True, False, False]
    assert recorder.tokens().strip() == "5"

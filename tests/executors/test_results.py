"""Large results by reference: a preview in the run, the full text beside it, whole to the model."""

from __future__ import annotations

from pathlib import Path

from astromesh.executors.results import PREVIEW_LIMIT, RunResults, expand, preview
from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import primary, write_agent
from tests.support.loop_tools import big_text
from tests.support.model_servers import Reply

BIG = {"name": "big_text", "type": "python", "handler": "tests.support.loop_tools:big_text"}


def result(content: str, call_id: str = "call_1") -> ActionResult:
    return ActionResult(call_id=call_id, name="big_text", ok=True, content=content)


def test_a_short_result_is_kept_as_it_is():
    short = result("x" * PREVIEW_LIMIT)
    assert preview(short) is short


def test_a_long_result_becomes_a_marked_preview():
    full = result(big_text(PREVIEW_LIMIT + 500))
    shown = preview(full)
    assert shown.truncated and shown.call_id == "call_1"
    assert shown.content.startswith(full.content[:PREVIEW_LIMIT])
    assert shown.content.endswith(
        "[... 500 more characters; the full result of call_1 is kept with the run]"
    )
    assert preview(shown) is shown  # a preview is never shortened again


def test_expand_swaps_the_preview_inside_any_message_built_from_it():
    full = result(big_text(PREVIEW_LIMIT * 2))
    message = Message.user(f"Observation: {preview(full).content}")
    message.content_ref = "call_1"

    expanded = expand(message, full)

    assert expanded.content == f"Observation: {full.content}"
    assert expanded.content_ref is None
    assert message.content.startswith("Observation: ") and message.content_ref == "call_1"
    other = result(big_text(PREVIEW_LIMIT * 2) + "?", "call_2")
    assert expand(message, other) is message  # not its preview: left alone


async def test_resolve_reads_the_store_only_for_references():
    backend = MemoryBackend()
    run = await backend.runs.create(RunState(agent="a", query="q"))
    results = RunResults(backend.runs, run.id)
    kept = results.keep(result(big_text(PREVIEW_LIMIT + 1)))
    plain = [Message.system("s"), Message.user("q")]
    assert await results.resolve(plain) == plain

    ref = Message.tool(kept.content, tool_call_id="call_1", name="big_text")
    ref.content_ref = "call_1"
    # Kept but not yet checkpointed: resolved from what waits for the next write.
    assert await backend.runs.get_results(run.id, ["call_1"]) == {}
    assert len((await results.resolve([*plain, ref]))[2].content) == PREVIEW_LIMIT + 1

    await results.checkpoint(run)  # the run and its results in one write
    assert results.unsaved == [] and run.version == 2
    resolved = await results.resolve([*plain, ref])

    assert resolved[:2] == plain and len(resolved[2].content) == PREVIEW_LIMIT + 1
    stored = await backend.runs.get_results(run.id, ["call_1"])
    assert not stored["call_1"].truncated and len(stored["call_1"].content) == PREVIEW_LIMIT + 1


async def test_text_protocol_observations_are_expanded_too(tmp_path: Path, openai_server):
    """The ReAct text protocol wraps results as 'Observation: ...' user messages."""
    write_agent(
        tmp_path / "agents",
        model=primary(openai_server.url),
        tools=[BIG],
        orchestration={"pattern": "react", "tool_calling": "text"},
    )
    size = PREVIEW_LIMIT * 4
    openai_server.push(
        Reply(f'Action: big_text\nAction Input: {{"size": {size}}}'),
        Reply("Final Answer: long indeed"),
    )
    backend = MemoryBackend()
    async with AgentRuntime(tmp_path / "agents", env={}, state=backend) as runtime:
        run = await runtime.run("helper", "fetch")

    assert run.answer == "long indeed"
    sent = openai_server.requests[1]["messages"][-1]
    assert sent == {"role": "user", "content": f"Observation: {big_text(size)}"}
    observation = run.messages[-2]
    assert observation.content_ref == "call_0_0" and len(observation.content) < PREVIEW_LIMIT + 100
    stored: RunState = await backend.runs.get(run.id)
    assert len(stored.model_dump_json()) < 4 * PREVIEW_LIMIT  # the run stays small

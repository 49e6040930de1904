"""Model calls a run causes outside its pattern's steps count into its usage: the summary
folded as it ends, and a tool that calls the agent's model (text_summarize). Real runs
against the scripted, priced model server."""

from __future__ import annotations

from pathlib import Path

import pytest

from astromesh.models.types import ModelResponse, Usage
from astromesh.runs.state import RunStatus
from astromesh.runs.usage import ModelCall, count, counting
from tests.support.agents import PRICED_MODEL, write_agent, write_priced_provider
from tests.support.model_servers import Reply


def priced_agent(agents_dir: Path, url: str, **spec: object) -> None:
    write_agent(agents_dir, model=PRICED_MODEL, **spec)
    write_priced_provider(agents_dir, url)


def lines(run) -> dict[str, tuple[int, int, int, float]]:
    return {
        line.role: (line.calls, line.tokens_in, line.tokens_out, round(line.cost, 6))
        for line in run.usage.by_model
    }


async def test_the_summary_folded_as_a_run_ends_is_in_its_usage(
    openai_server, agents_dir, make_runtime
):
    priced_agent(
        agents_dir,
        openai_server.url,
        memory={"conversational": {"backend": "sqlite", "strategy": "summary", "max_turns": 1}},
    )
    call = {"tokens_in": 40, "tokens_out": 10}
    openai_server.push(
        Reply("Hello Ada.", **call),
        Reply("Rome.", **call),
        Reply("SUMMARY: The user is Ada.", tokens_in=100, tokens_out=20),  # folded after run 2
    )
    runtime = make_runtime()
    first = await runtime.run("helper", "I am Ada.", session_id="s")
    second = await runtime.run("helper", "Capital of Italy?", session_id="s")

    assert lines(first) == {"default": (1, 40, 10, 0.06)}
    assert second.status is RunStatus.SUCCEEDED
    assert lines(second) == {"default": (1, 40, 10, 0.06), "summary": (1, 100, 20, 0.14)}
    assert (second.usage.tokens_in, second.usage.tokens_out) == (140, 30)
    assert second.usage.cost == pytest.approx(0.2)


async def test_a_summarising_tools_model_call_is_in_the_runs_usage(
    openai_server, agents_dir, make_runtime
):
    priced_agent(
        agents_dir,
        openai_server.url,
        tools=[{"name": "text_summarize", "type": "builtin"}],
    )
    openai_server.push(
        Reply(tool_calls=[("text_summarize", {"text": "A long text. " * 20})], tokens_in=40,
              tokens_out=10),
        Reply("A short text.", tokens_in=100, tokens_out=20),  # the tool's own call
        Reply("It says: a short text.", tokens_in=40, tokens_out=10),
    )  # fmt: skip
    run = await make_runtime().run("helper", "Summarise this.", session_id="s")

    assert run.status is RunStatus.SUCCEEDED, run.error
    assert lines(run) == {"default": (2, 80, 20, 0.12), "summary": (1, 100, 20, 0.14)}
    assert run.usage.cost == pytest.approx(0.26)


async def test_concurrent_blocks_count_their_own_calls():
    import asyncio

    def response(tokens: int) -> ModelResponse:
        return ModelResponse(provider="p", model="m", usage=Usage(tokens_in=tokens), cost=0.0)

    async def tool(tokens: int) -> list[ModelCall]:
        with counting() as calls:
            await asyncio.sleep(0.01)
            count(response(tokens))
            await asyncio.sleep(0.01)
        return calls

    with counting() as outer:
        a, b = await asyncio.gather(tool(1), tool(2))
    assert [c.usage.tokens_in for c in a] == [1]
    assert [c.usage.tokens_in for c in b] == [2]
    assert outer == []
    count(response(3))  # outside any block: counted nowhere, and no error

"""Runtime overhead per ReAct iteration, with a zero-latency in-process model.

Prints, for the in-memory and SQLite stores, the median time of one iteration (step -> act ->
observe -> checkpoint) of the runtime's loop, against a baseline measured in the same run:
the same model and tool called directly in a bare loop, with no runtime around them. The
difference is what Astromesh itself costs per iteration.

    python bench/steps.py [--iterations 20] [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import yaml

from astromesh.models import registry
from astromesh.models.base import Model
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolDefinition,
    Usage,
)
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from astromesh.stores.sqlite import SQLiteBackend
from astromesh.tools import PythonTool, ToolContext


class InstantModel(Model):
    """Calls the tool until ``iterations`` tool results are in the conversation, then answers."""

    provider_type = "instant"
    ITERATIONS = 20

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        done = sum(1 for m in messages if m.role == "tool")
        if done < self.ITERATIONS:
            call = ToolCall(id=f"c{done}", name="add", arguments={"a": done, "b": 1})
            yield ModelResponse(
                tool_calls=[call],
                usage=Usage(tokens_in=10, tokens_out=2),
                provider="instant",
                model=self.model,
            )
            return
        yield TextDelta("done")
        yield ModelResponse(
            content="done",
            usage=Usage(tokens_in=10, tokens_out=1),
            provider="instant",
            model=self.model,
        )


def add(a: int, b: int) -> int:
    return a + b


AGENT = {
    "apiVersion": "astromesh/v1",
    "kind": "Agent",
    "metadata": {"name": "bench"},
    "spec": {
        "model": {"primary": {"provider": "openai_compat", "model": "instant"}},
        "prompts": {"system": "You are a benchmark."},
        "orchestration": {"pattern": "react", "max_iterations": 1000, "timeout_seconds": 600},
        "tools": [{"name": "add", "type": "python", "handler": "__main__:add"}],
    },
}


async def bare_loop(iterations: int) -> float:
    """The baseline: the same model and tool calls, no runtime, no store, no records."""
    model = InstantModel.__new__(InstantModel)
    model.model = "instant"
    tool = PythonTool("add", add)
    ctx = ToolContext(run_id="r", agent="bench", session_id="s")
    messages = [Message.system("x"), Message.user("go")]
    started = time.perf_counter()
    while True:
        response = await model.complete(messages, tools=[tool.definition])
        if not response.tool_calls:
            break
        messages.append(response.as_message())
        for call in response.tool_calls:
            result = await tool.call(call.arguments, ctx)
            messages.append(Message.tool(result.content, tool_call_id=call.id, name=call.name))
    return (time.perf_counter() - started) / iterations


async def runtime_loop(runtime: AgentRuntime, iterations: int) -> float:
    started = time.perf_counter()
    run = await runtime.run("bench", "go")
    elapsed = time.perf_counter() - started
    assert run.status.value == "succeeded" and run.iteration == iterations, run.error
    return elapsed / iterations


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="ReAct iterations per run")
    parser.add_argument("--runs", type=int, default=30, help="runs per configuration")
    args = parser.parse_args()
    InstantModel.ITERATIONS = args.iterations
    registry._PROVIDERS["openai_compat"] = "__main__:InstantModel"  # the model under test

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "agents"
        folder.mkdir()
        (folder / "bench.agent.yaml").write_text(yaml.safe_dump(AGENT))
        backends = {
            "memory": MemoryBackend(),
            "sqlite": SQLiteBackend(Path(tmp) / "state.db"),
        }
        baseline = [await bare_loop(args.iterations) for _ in range(args.runs)]
        base_ms = statistics.median(baseline) * 1000
        print(f"iterations per run: {args.iterations}, runs: {args.runs}")
        print(f"{'configuration':<28}{'ms / iteration':>16}{'overhead ms':>14}{'ratio':>8}")
        print(f"{'bare loop (baseline)':<28}{base_ms:>16.3f}{0:>14.3f}{1:>8.1f}")
        for name, backend in backends.items():
            runtime = AgentRuntime(folder, env={}, state=backend)
            await runtime_loop(runtime, args.iterations)  # warm: build the agent once
            samples = [await runtime_loop(runtime, args.iterations) for _ in range(args.runs)]
            ms = statistics.median(samples) * 1000
            print(
                f"{'runtime, ' + name + ' store':<28}{ms:>16.3f}{ms - base_ms:>14.3f}"
                f"{ms / base_ms:>8.1f}"
            )
            await runtime.close()
            await backend.close()


if __name__ == "__main__":
    asyncio.run(main())

"""Runtime overhead per ReAct iteration, with a zero-latency in-process model.

Prints, for the in-memory and SQLite stores, the median time of one iteration (step -> act ->
observe -> checkpoint) of the runtime's loop, against a baseline measured in the same run:
the same model and tool called directly in a bare loop, with no runtime around them. The
difference is what Astromesh itself costs per iteration.

Then the same agent on the step loop's state machine, executed by moto with its Lambda tasks
bound to the real handlers (``tests/support/stepfunctions.py``), for runs of N iterations: the
state transitions (what Standard workflows are billed by), the largest state payload of any
iteration (Step Functions' limit is 256 KB), and the time spent inside the handlers per
iteration (warm containers, SQLite; moto's own overhead is not counted, it says nothing about
AWS).

Last, what one checkpoint costs the SQLite store as a run grows (``--growth``): a run's lists
are rows appended by each checkpoint (``astromesh/stores/_journal.py``), so the cost of the
checkpoint at iteration 60 should be that at iteration 5, where a store that rewrites the
whole document pays in proportion to the run's length. CPU time of the process (the worker
thread included) is printed beside wall time: it is far less disturbed by a busy machine.

    python bench/steps.py [--iterations 20] [--runs 30] [--machine-iterations 1 5 20]
                          [--growth 5 20 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
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
from astromesh.runs.state import RunState
from astromesh.runs.trace import RunTrace
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


def fresh_session() -> str:
    """A session of its own for each run, like the bare loop's fresh conversation: in one
    shared session every run would first recall the turns of the runs before it
    (conversational memory is on by default)."""
    return uuid.uuid4().hex


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
    run = await runtime.run("bench", "go", session_id=fresh_session())
    elapsed = time.perf_counter() - started
    assert run.status.value == "succeeded" and run.iteration == iterations, run.error
    return elapsed / iterations


async def state_machine(folder: Path, db: Path, iteration_counts: Sequence[int]) -> None:
    """Figures of the state machine for runs of each number of iterations."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
    from tests.support.stepfunctions import (
        LocalStepFunctions,
        largest_payload_per_iteration,
        state_transitions,
    )

    os.environ.update(
        ASTROMESH_AGENTS_DIR=str(folder),
        ASTROMESH_STATE_BACKEND="sqlite",
        ASTROMESH_STATE_PATH=str(db),
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    backend = SQLiteBackend(db)
    print()
    print("state machine (moto, handlers of functions/, SQLite), one tool call per iteration")
    print(
        f"{'iterations':>10}{'transitions':>13}{'per iteration':>15}"
        f"{'largest payload B':>19}{'first / last it. B':>20}{'handler ms / it.':>18}"
    )
    with LocalStepFunctions() as sfn:
        for count, measured in [(1, False), *((c, True) for c in iteration_counts)]:
            InstantModel.ITERATIONS = count  # the first run only warms the containers
            run = await backend.runs.create(RunState(agent="bench", query="go"))
            sfn.invocations.clear()
            described = sfn.run(run.id, timeout=600)
            done = await backend.runs.get(run.id)
            assert described["status"] == "SUCCEEDED" and done.iteration == count, done.error
            if not measured:
                continue
            assert not any(i.cold for i in sfn.invocations), "containers should be warm"
            history = sfn.history(described["executionArn"])
            transitions = state_transitions(history)
            largest = largest_payload_per_iteration(history)[:-1]  # the last one finalizes
            handler_ms = sum(i.seconds for i in sfn.invocations) * 1000 / count
            print(
                f"{count:>10}{transitions:>13}{(transitions - 4) / count:>15.1f}"
                f"{max(largest):>19}{f'{largest[0]} / {largest[-1]}':>20}{handler_ms:>18.2f}"
            )
    await backend.close()


SPAN = {
    "name": "chat",
    "kind": "client",
    "start_ns": 1,
    "end_ns": 2,
    "status": "ok",
    "attributes": {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "instant",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 2,
    },
}
"""A kept span of the size a ReAct iteration's spans have without captured content."""


async def checkpoint_growth(db: Path, lengths: Sequence[int], runs: int = 10) -> None:
    """CPU and wall time of the SQLite checkpoint at each iteration count of ``lengths``.

    Each iteration adds what a ReAct iteration adds (an assistant message, a tool message,
    three step records, six spans); the checkpoints up to that iteration are written first
    and only the last ones are timed.
    """
    backend = SQLiteBackend(db)
    await backend.open()
    print()
    print("one SQLite checkpoint as the run grows (median of the checkpoints timed)")
    print(f"{'at iteration':>12}{'cpu us':>10}{'wall us':>10}")
    for length in lengths:
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(runs):
            run = await backend.runs.create(
                RunState(
                    agent="bench",
                    query="go",
                    messages=[Message.system("You are a benchmark."), Message.user("go")],
                    trace=RunTrace(trace_id="0" * 32, span_id="0" * 16),
                )
            )
            for n in range(length):
                run.messages.append(Message.assistant(f"call {n}"))
                run.messages.append(Message.tool(f"{n + 1}", tool_call_id=f"c{n}", name="add"))
                for kind in ("model_call", "tool_call", "guardrail"):
                    run.record(kind, n=n)
                assert run.trace is not None
                run.trace.keep([dict(SPAN, span_id=f"{n:08x}{k:08x}") for k in range(6)])
                timed = n >= length - 3
                started_cpu, started = time.process_time(), time.perf_counter()
                await backend.runs.checkpoint(run)
                if timed:
                    cpu.append(time.process_time() - started_cpu)
                    wall.append(time.perf_counter() - started)
        print(
            f"{length:>12}{statistics.median(cpu) * 1e6:>10.0f}"
            f"{statistics.median(wall) * 1e6:>10.0f}"
        )
    await backend.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="ReAct iterations per run")
    parser.add_argument("--runs", type=int, default=30, help="runs per configuration")
    parser.add_argument(
        "--machine-iterations",
        type=int,
        nargs="+",
        default=[1, 5, 20],
        help="iterations of each run on the state machine",
    )
    parser.add_argument(
        "--growth",
        type=int,
        nargs="*",
        default=[5, 20, 60],
        help="iterations at which one SQLite checkpoint is timed (none: skip)",
    )
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
        await state_machine(folder, Path(tmp) / "machine.db", args.machine_iterations)
        if args.growth:
            await checkpoint_growth(Path(tmp) / "growth.db", args.growth)


if __name__ == "__main__":
    asyncio.run(main())

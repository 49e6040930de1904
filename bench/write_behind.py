"""Write-behind checkpoints: the local loop on SQLite with its checkpoints written behind the
next model call, against the same store waiting for each checkpoint, runs taking turns in
one process.

``bench/steps.py``'s agent (a model that calls the tool ``add`` N times, then answers) with
a model that first waits ``--model-wait-ms`` (an ``asyncio.sleep``, as a network call would;
0 is steps.py's zero-latency model). Prints per configuration the median time of one
iteration and the time the checkpoint takes on the loop's own path (``begin_checkpoint``,
which encodes the run, and the wait after the step), per iteration.

    python bench/write_behind.py [--model-wait-ms 2 0] [--rounds 5] [--iterations 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import steps  # bench/steps.py: the agent, model and tool of the loop benchmark

from astromesh.executors.results import RunResults
from astromesh.models import registry
from astromesh.models.types import GenerationParams, Message, StreamEvent, ToolDefinition
from astromesh.runs.state import ActionResult, RunState
from astromesh.runtime import AgentRuntime
from astromesh.stores.base import PendingCheckpoint
from astromesh.stores.sqlite import SQLiteBackend, SQLiteRunStore


class WaitingModel(steps.InstantModel):
    """steps.py's model, answering after :attr:`WAIT` seconds of waiting."""

    WAIT = 0.0

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        if self.WAIT:
            await asyncio.sleep(self.WAIT)
        async for event in super().stream(messages, tools=tools, params=params):
            yield event


class AwaitedRunStore(SQLiteRunStore):
    """SQLite whose ``begin_checkpoint`` returns once its write committed: the loop as it was
    before write-behind."""

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        pending = await super().begin_checkpoint(run, results)
        with contextlib.suppress(Exception):  # raised again by the loop's wait()
            await pending.wait()
        return pending


class AwaitedSQLite(SQLiteBackend):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.runs = AwaitedRunStore(self)


class CheckpointClock:
    """Adds up the time the loop spends in ``RunResults.begin_checkpoint`` and
    ``wait_checkpoint`` (wrapped on the class for this process)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        begin, wait = RunResults.begin_checkpoint, RunResults.wait_checkpoint

        async def timed_begin(results: RunResults, run: RunState) -> None:
            started = time.perf_counter()
            try:
                await begin(results, run)
            finally:
                self.seconds += time.perf_counter() - started

        async def timed_wait(results: RunResults) -> None:
            started = time.perf_counter()
            try:
                await wait(results)
            finally:
                self.seconds += time.perf_counter() - started

        RunResults.begin_checkpoint = timed_begin  # type: ignore[method-assign]
        RunResults.wait_checkpoint = timed_wait  # type: ignore[method-assign]


async def compare(
    folder: Path, tmp: Path, iterations: int, rounds: int, clock: CheckpointClock
) -> None:
    backends: dict[str, SQLiteBackend] = {
        "written behind": SQLiteBackend(tmp / "behind.db"),
        "awaited": AwaitedSQLite(tmp / "awaited.db"),
    }
    runtimes = {name: AgentRuntime(folder, env={}, state=b) for name, b in backends.items()}
    for runtime in runtimes.values():
        await steps.runtime_loop(runtime, iterations)  # warm: build the agent once
    wall: dict[str, list[float]] = {name: [] for name in backends}
    on_path: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(rounds):
        for name, runtime in runtimes.items():
            clock.seconds = 0.0
            wall[name].append(await steps.runtime_loop(runtime, iterations))
            on_path[name].append(clock.seconds / iterations)
    for name in backends:
        print(
            f"  {'SQLite, ' + name:<24}{statistics.median(wall[name]) * 1000:>14.3f}"
            f"{statistics.median(on_path[name]) * 1000:>22.3f}"
        )
    for runtime in runtimes.values():
        await runtime.close()
    for backend in backends.values():
        await backend.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-wait-ms", type=float, nargs="+", default=[2.0, 0.0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each configuration")
    parser.add_argument("--iterations", type=int, default=20, help="ReAct iterations per run")
    args = parser.parse_args()
    steps.InstantModel.ITERATIONS = args.iterations
    main_module = sys.modules["__main__"]
    main_module.add = steps.add  # type: ignore[attr-defined] - the agent's tool handler
    registry._PROVIDERS["openai_compat"] = "__main__:WaitingModel"
    clock = CheckpointClock()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "agents"
        folder.mkdir()
        (folder / "bench.agent.yaml").write_text(yaml.safe_dump(steps.AGENT))
        print(f"iterations per run: {args.iterations}, rounds: {args.rounds}, runs alternated")
        print(f"  {'configuration':<24}{'ms / iteration':>14}{'checkpoint on path ms':>22}")
        for wait_ms in args.model_wait_ms:
            WaitingModel.WAIT = wait_ms / 1000
            print(f"model waits {wait_ms:g} ms")
            await compare(folder, Path(tmp), args.iterations, args.rounds, clock)


if __name__ == "__main__":
    asyncio.run(main())

"""What the runtime's traces cost per ReAct iteration, with a zero-latency in-process model.

The same agent and loop as ``bench/steps.py`` (in-memory store), run alternately with the
spans recorded and kept with the run (as always: no OTLP export) and with a no-op tracer in
their place, so the difference is what tracing itself costs. Also prints the spans a run
keeps per iteration and what they add to the run document (bytes per iteration), which every
Step Functions task loads and saves.

    python bench/tracing.py [--iterations 20] [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import yaml
from _results import record
from opentelemetry import trace
from steps import AGENT, InstantModel, add, fresh_session  # noqa: F401 - add: __main__:add

from astromesh.models import registry
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from astromesh.telemetry import provider


class _NoSpans:
    """A tracing whose tracer records nothing (the baseline)."""

    tracer = trace.NoOpTracer()
    exporting = False

    class buffer:  # stands in for RunSpans
        @staticmethod
        def take(_run_id: str) -> list[object]:
            return []


async def one_run(runtime: AgentRuntime, iterations: int, traced: bool) -> tuple[float, object]:
    real = provider.tracing()
    provider._built = real if traced else SimpleNamespace(**vars(_NoSpans))  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        run = await runtime.run("bench", "go", session_id=fresh_session())
        elapsed = time.perf_counter() - started
    finally:
        provider._built = real
    assert run.status.value == "succeeded" and run.iteration == iterations, run.error
    return elapsed / iterations, run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20, help="ReAct iterations per run")
    parser.add_argument("--runs", type=int, default=30, help="runs per configuration")
    args = parser.parse_args()
    InstantModel.ITERATIONS = args.iterations
    registry._PROVIDERS["openai_compat"] = "__main__:InstantModel"

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "agents"
        folder.mkdir()
        (folder / "bench.agent.yaml").write_text(yaml.safe_dump(AGENT))
        runtime = AgentRuntime(folder, env={}, state=MemoryBackend())
        await one_run(runtime, args.iterations, True)  # warm: the agent, the SDK
        await one_run(runtime, args.iterations, False)
        on: list[float] = []
        off: list[float] = []
        kept = None
        for _ in range(args.runs):  # interleaved: the machine's load hits both alike
            seconds, kept = await one_run(runtime, args.iterations, True)
            on.append(seconds)
            off.append((await one_run(runtime, args.iterations, False))[0])
        await runtime.close()
    on_ms, off_ms = statistics.median(on) * 1000, statistics.median(off) * 1000
    spans = len(kept.trace.spans)
    size = len(json.dumps(kept.trace.model_dump(mode="json")))
    print(f"iterations per run: {args.iterations}, runs: {args.runs} (interleaved)")
    print(f"{'configuration':<34}{'ms / iteration':>16}{'ratio':>8}")
    print(f"{'no-op tracer (baseline)':<34}{off_ms:>16.3f}{1:>8.2f}")
    print(f"{'spans kept with the run':<34}{on_ms:>16.3f}{on_ms / off_ms:>8.2f}")
    print(
        f"spans per iteration: {spans / args.iterations:.1f}; trace in the run document:"
        f" {size / args.iterations / 1024:.1f} KiB per iteration ({spans} spans, {size} bytes)"
    )
    record("tracing", "ms per iteration, spans kept", on_ms, "ms", ratio=on_ms / off_ms)
    record("tracing", "trace bytes per iteration", size / args.iterations, "bytes")


if __name__ == "__main__":
    asyncio.run(main())

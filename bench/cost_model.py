"""AWS cost per 1,000 runs of a ReAct agent, from what a run costs on the emulated stack.

Each run of a grid (iterations x tool calls per iteration) goes through the step loop's
Standard state machine executed by moto with its Lambda tasks bound to the real handlers
(``tests/support/stepfunctions.py``, SQLite state, an instant in-process model). From it are
counted: state transitions, invocations per function, time inside each handler (warm), and
the largest state payload. A real model and real tools take far longer than the handlers'
own work, so their time is added per call (``--model-seconds``, ``--tool-seconds``) and
billed on the function that waits for it.

Priced (``PRICES``, us-east-1 list prices, arm64 as ``infra/bundling.py`` deploys, free tiers
ignored, fixed costs such as RDS, ElastiCache and NAT left out):

- Lambda: GB-seconds at each function's memory from ``infra/functions.py`` (billed per ms)
  plus requests;
- Step Functions Standard (async and channel runs): state transitions;
- Step Functions Express (sync REST runs): one request per execution plus duration, billed
  in 64 MB and 100 ms steps (the payloads here are far below 64 MB);
- API Gateway REST and the api function: a sync run is one request whose api function waits
  for the Express execution; an async run is two (start, fetch the result), ~20 ms each.

    python bench/cost_model.py [--iterations 1 5 10] [--tool-calls 1 3]
        [--model-seconds 1.0] [--tool-seconds 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support and infra, from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import record  # noqa: E402

from astromesh.models import registry  # noqa: E402
from astromesh.models.base import Model  # noqa: E402
from astromesh.models.types import (  # noqa: E402
    GenerationParams,
    Message,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolDefinition,
    Usage,
)

PRICES_DATE = "2026-12-04"
PRICES = {
    "lambda_gb_s_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "sfn_standard_transition": 0.025 / 1000,
    "sfn_express_request": 1.00 / 1e6,
    "sfn_express_gb_s": 0.00001667,
    "apigw_rest_request": 3.50 / 1e6,
}
"""USD, us-east-1 list prices as published by AWS (Lambda arm64 per GB-s and per request;
Step Functions per Standard transition, per Express request and Express GB-s for the first
1,000 GB-hours; API Gateway REST per request, first 333 M). Written down on PRICES_DATE from
the public price pages as they stood (unchanged since 2023); not fetched by this script:
re-check them before relying on the totals."""

EXPRESS_MEMORY_GB = 64 / 1024
"""Express bills memory in 64 MB chunks; a run's state (ids only, ~200 B) is one chunk."""


class ScriptedModel(Model):
    """Calls ``add`` TOOLS times per turn until ITERATIONS turns did, then answers."""

    provider_type = "instant"
    ITERATIONS = 1
    TOOLS = 1

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        turn = sum(1 for m in messages if m.role == "tool") // self.TOOLS
        if turn < self.ITERATIONS:
            calls = [
                ToolCall(id=f"c{turn}-{i}", name="add", arguments={"a": turn, "b": i})
                for i in range(self.TOOLS)
            ]
            yield ModelResponse(
                tool_calls=calls,
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
    "metadata": {"name": "costed"},
    "spec": {
        "model": {"primary": {"provider": "openai_compat", "model": "instant"}},
        "prompts": {"system": "You are a benchmark."},
        "orchestration": {"pattern": "react", "max_iterations": 1000, "timeout_seconds": 600},
        "tools": [{"name": "add", "type": "python", "handler": "__main__:add"}],
    },
}


@dataclass(frozen=True, slots=True)
class Measured:
    """One run on the emulated stack."""

    iterations: int
    tools: int
    transitions: int
    invocations: dict[str, int]
    handler_seconds: dict[str, float]
    largest_payload: int


API_CALL_SECONDS = 0.02
"""Assumed time of the api function answering an async start or a result fetch (warm)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """USD per 1,000 runs, by item; ``api_*`` differ by how the run is started: sync (one
    request, the api function waiting for the Express execution) or async (a start and a
    result fetch, the run on the Standard machine)."""

    lambda_compute: float
    lambda_requests: float
    transitions: float
    express: float
    api_sync: tuple[float, float]
    """(API Gateway, api function) for a sync run."""
    api_async: tuple[float, float]
    """(API Gateway, api function) for an async run."""

    @property
    def standard(self) -> float:
        return self.lambda_compute + self.lambda_requests + self.transitions + sum(self.api_async)

    @property
    def sync(self) -> float:
        return self.lambda_compute + self.lambda_requests + self.express + sum(self.api_sync)


def memory_gb() -> dict[str, float]:
    """Each function's memory, as ``infra/functions.py`` deploys it."""
    from infra.functions import BY_NAME

    return {f"astromesh-{n.replace('_', '-')}": BY_NAME[n].memory_mb / 1024 for n in BY_NAME}


def price(m: Measured, model_s: float, tool_s: float) -> Cost:
    """The cost of 1,000 runs like ``m`` with a model call taking ``model_s`` and a tool call
    ``tool_s`` (added to the functions that wait for them)."""
    from tests.support.stepfunctions import ORCHESTRATION_STEP, TOOL_EXECUTOR

    gb = memory_gb()
    waits = {
        ORCHESTRATION_STEP: (m.iterations + 1) * model_s,  # the tool turns and the answer
        TOOL_EXECUTOR: m.iterations * m.tools * tool_s,
    }
    seconds = {f: m.handler_seconds.get(f, 0.0) + waits.get(f, 0.0) for f in m.invocations}
    gb_s = sum(seconds[f] * gb[f] for f in seconds)
    requests = sum(m.invocations.values())
    # Express duration: the steps run one after another; a Map runs its tool calls in parallel.
    step_s = seconds.get(ORCHESTRATION_STEP, 0.0)
    tool_wall = seconds.get(TOOL_EXECUTOR, 0.0) / max(m.tools, 1)
    express_s = math.ceil((step_s + tool_wall) * 10) / 10
    runs = 1000
    gb_price, request = PRICES["lambda_gb_s_arm64"], PRICES["lambda_request"]
    api_gb = gb["astromesh-api"]
    return Cost(
        lambda_compute=runs * gb_s * gb_price,
        lambda_requests=runs * requests * request,
        transitions=runs * m.transitions * PRICES["sfn_standard_transition"],
        express=runs
        * (
            PRICES["sfn_express_request"]
            + express_s * EXPRESS_MEMORY_GB * PRICES["sfn_express_gb_s"]
        ),
        api_sync=(
            runs * PRICES["apigw_rest_request"],
            runs * (express_s * api_gb * gb_price + request),
        ),
        api_async=(
            runs * 2 * PRICES["apigw_rest_request"],
            runs * 2 * (API_CALL_SECONDS * api_gb * gb_price + request),
        ),
    )


async def measure(grid: Sequence[tuple[int, int]]) -> list[Measured]:
    from tests.support.stepfunctions import (
        LocalStepFunctions,
        largest_payload_per_iteration,
        state_transitions,
    )

    from astromesh.runs.state import RunState
    from astromesh.stores.sqlite import SQLiteBackend

    registry._PROVIDERS["openai_compat"] = "__main__:ScriptedModel"
    out: list[Measured] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "agents"
        folder.mkdir()
        (folder / "costed.agent.yaml").write_text(yaml.safe_dump(AGENT))
        db = Path(tmp) / "state.db"
        os.environ.update(
            ASTROMESH_AGENTS_DIR=str(folder),
            ASTROMESH_STATE_BACKEND="sqlite",
            ASTROMESH_STATE_PATH=str(db),
            POWERTOOLS_LOG_LEVEL="WARNING",
        )
        backend = SQLiteBackend(db)
        with LocalStepFunctions() as sfn:
            warm = (1, max(t for _, t in grid))  # as many tool containers as the Map needs
            for (iterations, tools), measured in [(warm, False), *((g, True) for g in grid)]:
                ScriptedModel.ITERATIONS, ScriptedModel.TOOLS = iterations, tools
                run = await backend.runs.create(RunState(agent="costed", query="go"))
                sfn.invocations.clear()
                described = sfn.run(run.id, timeout=600)
                done = await backend.runs.get(run.id)
                ok = done.status.value == "succeeded" and done.iteration == iterations
                assert described["status"] == "SUCCEEDED" and ok, (done.status, done.error)
                if not measured:  # the first run warms the containers
                    continue
                history = sfn.history(described["executionArn"])
                counts: dict[str, int] = {}
                seconds: dict[str, float] = {}
                for i in sfn.invocations:
                    counts[i.function] = counts.get(i.function, 0) + 1
                    seconds[i.function] = seconds.get(i.function, 0.0) + i.seconds
                largest = max(largest_payload_per_iteration(history))
                out.append(
                    Measured(
                        iterations,
                        tools,
                        state_transitions(history),
                        counts,
                        seconds,
                        largest,
                    )
                )
        await backend.close()
    return out


def usd(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def growth(runs: Sequence[Measured], model_s: float, tool_s: float) -> None:
    """What one more iteration, and one more tool call per iteration, add per 1,000 runs."""
    by = {(m.iterations, m.tools): price(m, model_s, tool_s) for m in runs}
    its = sorted({i for i, _ in by})
    tools = sorted({t for _, t in by})
    if len(its) < 2:
        return
    print()
    lo, hi = its[0], its[-1]
    for t in tools:
        d_async = (by[hi, t].standard - by[lo, t].standard) / (hi - lo)
        d_sync = (by[hi, t].sync - by[lo, t].sync) / (hi - lo)
        print(
            f"one more iteration ({t} tool call(s) each): +{usd(d_async)} async,"
            f" +{usd(d_sync)} sync per 1,000 runs"
        )
    if len(tools) > 1:
        a, b = tools[0], tools[-1]
        d_async = (by[hi, b].standard - by[hi, a].standard) / (hi * (b - a))
        d_sync = (by[hi, b].sync - by[hi, a].sync) / (hi * (b - a))
        print(
            f"one more tool call in one iteration: +{usd(d_async)} async,"
            f" +{usd(d_sync)} sync per 1,000 runs"
        )


def breakdown(m: Measured, model_s: float, tool_s: float) -> None:
    """Each item's share of 1,000 typical runs, both ways they are started."""
    cost = price(m, model_s, tool_s)
    gb = memory_gb()
    print()
    print(
        f"typical run: {m.iterations} iterations x {m.tools} tool call(s); per run"
        f" {m.transitions} transitions, largest state payload {m.largest_payload} B, invocations"
        + "".join(f" {f}: {n} ({gb[f] * 1024:.0f} MB)" for f, n in sorted(m.invocations.items()))
    )
    items = [
        ("Lambda GB-s", cost.lambda_compute, cost.lambda_compute),
        ("Lambda requests", cost.lambda_requests, cost.lambda_requests),
        ("Step Functions Standard transitions", cost.transitions, 0.0),
        ("Step Functions Express requests + duration", 0.0, cost.express),
        ("API Gateway REST requests", cost.api_async[0], cost.api_sync[0]),
        ("api function (start/fetch; sync: waits)", cost.api_async[1], cost.api_sync[1]),
    ]
    print(f"  {'per 1,000 runs':<44}{'async (Standard)':>18}{'sync (Express)':>16}")
    for name, async_usd, sync_usd in items:
        print(f"  {name:<44}{usd(async_usd):>18}{usd(sync_usd):>16}")
    print(f"  {'total':<44}{usd(cost.standard):>18}{usd(cost.sync):>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--tool-calls", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--model-seconds", type=float, default=1.0, help="per model call")
    parser.add_argument("--tool-seconds", type=float, default=0.05, help="per tool call")
    parser.add_argument(
        "--typical", type=int, nargs=2, default=[3, 1], metavar=("ITERATIONS", "TOOLS")
    )
    args = parser.parse_args()
    typical = (args.typical[0], args.typical[1])
    grid = sorted({(i, t) for i in args.iterations for t in args.tool_calls} | {typical})
    runs = asyncio.run(measure(grid))
    model_s, tool_s = args.model_seconds, args.tool_seconds
    print(f"AWS cost per 1,000 runs (us-east-1 list prices of {PRICES_DATE}, arm64, no free tier)")
    print(f"model call {model_s} s, tool call {tool_s} s (assumed); the rest measured on moto")
    for name, value in PRICES.items():
        print(f"  price {name:<26} ${value:.10f}".rstrip("0"))
    print()
    header = (
        f"{'iter.':>5}{'tools/it.':>10}{'transitions':>12}{'invocations':>12}{'handler ms':>11}"
        f"{'payload B':>10}{'Lambda':>10}{'Standard':>11}{'Express':>10}"
        f"{'async (Std)':>13}{'sync (Expr)':>13}"
    )
    print(header)
    for m in runs:
        cost = price(m, model_s, tool_s)
        handler_ms = sum(m.handler_seconds.values()) * 1000
        print(
            f"{m.iterations:>5}{m.tools:>10}{m.transitions:>12}{sum(m.invocations.values()):>12}"
            f"{handler_ms:>11.1f}{m.largest_payload:>10}"
            f"{usd(cost.lambda_compute + cost.lambda_requests):>10}{usd(cost.transitions):>11}"
            f"{usd(cost.express):>10}{usd(cost.standard):>13}{usd(cost.sync):>13}"
        )
        label = f"{m.iterations} iterations x {m.tools} tool calls"
        record("cost_model", f"transitions, {label}", m.transitions, "transitions")
        record("cost_model", f"USD per 1,000 async runs, {label}", cost.standard, "USD")
        record("cost_model", f"USD per 1,000 sync runs, {label}", cost.sync, "USD")
    growth(runs, model_s, tool_s)
    breakdown(next(m for m in runs if (m.iterations, m.tools) == typical), model_s, tool_s)
    print()
    print(
        "Lambda = GB-s (handler time + the model/tool waits) and requests; Standard = state"
        " transitions; Express = requests + duration (64 MB, 100 ms steps); async = Lambda +"
        " Standard + 2 API requests (gateway + api function); sync = Lambda + Express + 1 API"
        " request whose api function waits for the run."
    )


if __name__ == "__main__":
    main()

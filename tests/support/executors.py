"""Helpers for comparing the two executors of the step loop (see tests/executors)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astromesh.executors.stepfunctions import StepFunctionsExecutor
from astromesh.runs.state import RunState
from astromesh.runtime import AgentRuntime
from astromesh.stores.sqlite import SQLiteBackend
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.stepfunctions import LocalStepFunctions


@dataclass
class Side:
    """One deployment: its agents folder, model server and store."""

    agents_dir: Path
    server: ScriptedOpenAIServer
    state: SQLiteBackend

    def write_agent(self, **spec: Any) -> None:
        write_agent(self.agents_dir, model=primary(self.server.url), **spec)


def script(*sides: Side, replies: list[Reply]) -> None:
    """Queue the same model turns on every side."""
    for side in sides:
        side.server.push(*replies)


async def run_locally(side: Side, query: str, **kwargs: Any) -> RunState:
    runtime = AgentRuntime(side.agents_dir, env={}, state=side.state)
    try:
        return await runtime.run("helper", query, **kwargs)
    finally:
        await runtime.close()


async def run_on_step_functions(
    side: Side, sfn: LocalStepFunctions, query: str, **fields: Any
) -> RunState:
    executor = StepFunctionsExecutor(
        side.state.runs, express_arn=sfn.express_arn, client=sfn.client
    )
    run = RunState(agent="helper", namespace="tests", query=query, **fields)
    return await executor.submit(run, wait=True)


def comparable(run: RunState) -> dict[str, Any]:
    """What must be equal between executors: everything but ids, times and durations."""
    return {
        "status": run.status,
        "answer": run.answer,
        "error": run.error,
        "iteration": run.iteration,
        "steps": [(s.index, s.iteration, s.type, s.data) for s in run.steps],
        "messages": [m.model_dump() for m in run.messages],
        "results": [r.model_dump(exclude={"duration_ms"}) for r in run.results],
        "usage": run.usage.model_dump(),
    }

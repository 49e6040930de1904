"""Helpers for comparing the two executors of the step loop (see tests/executors)."""

from __future__ import annotations

import json
import re
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


async def run_locally(side: Side, query: str, agent: str = "helper", **kwargs: Any) -> RunState:
    runtime = AgentRuntime(side.agents_dir, env={}, state=side.state)
    try:
        return await runtime.run(agent, query, **kwargs)
    finally:
        await runtime.close()


async def run_on_step_functions(
    side: Side, sfn: LocalStepFunctions, query: str, agent: str = "helper", **fields: Any
) -> RunState:
    executor = StepFunctionsExecutor(
        side.state.runs, express_arn=sfn.express_arn, client=sfn.client
    )
    run = RunState(agent=agent, namespace="tests", query=query, **fields)
    return await executor.submit(run, wait=True)


_RUN_ID = re.compile(r"run_[0-9a-f]{32}")


def comparable(run: RunState) -> Any:
    """What must be equal between executors: everything but times, durations and run ids
    (a child run's id, recorded in its parent, is new on each side), and ``decision``, which
    only the Step Functions side needs to persist."""
    fields = {
        "status": run.status.value,
        "answer": run.answer,
        "error": run.error,
        "iteration": run.iteration,
        "steps": [(s.index, s.iteration, s.type, s.data) for s in run.steps],
        "messages": [m.model_dump() for m in run.messages],
        "results": [r.model_dump(exclude={"duration_ms"}) for r in run.results],
        "usage": run.usage.model_dump(),
        "pattern_state": run.pattern_state,
    }
    return json.loads(_RUN_ID.sub("<run>", json.dumps(fields)))

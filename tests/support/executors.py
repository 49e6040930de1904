"""Helpers for comparing the two executors of the step loop (see tests/executors)."""

from __future__ import annotations

import json
import re
import tempfile
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
    """Submit a run as an API process would: it builds the agent from its own documents
    (the side's folder) to screen the input, then the machine's functions run it.

    An agent the side's folder does not define is built from a folder of its own: the
    submitting process knows it, the functions do not (documents out of step between
    deployments), which is what the tests of a missing agent exercise."""
    executor = StepFunctionsExecutor(
        side.state.runs, express_arn=sfn.express_arn, client=sfn.client
    )
    with tempfile.TemporaryDirectory() as elsewhere:
        folder = side.agents_dir
        if not (folder / f"{agent}.agent.yaml").exists():
            folder = Path(elsewhere)
            write_agent(folder, agent, model=primary(side.server.url))
        runtime = AgentRuntime(folder, env={}, state=side.state)
        try:
            built = await runtime.get(agent)
            run = RunState(agent=agent, namespace="tests", query=query, **fields)
            return await executor.submit(run, built, wait=True)
        finally:
            await runtime.close()


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

"""Two deployments of the same workflows, for ``tests/workflows/test_stepfunctions_*``: one
runs them in-process (the local executor), the other on the workflow machine (moto executes
it; its Lambda tasks run the real handlers, which read that side's agents folder and SQLite
file from the environment, as in AWS). Each side has its own scripted model servers, fed the
same replies, so the two runs can be compared step by step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astromesh.runtime import AgentRuntime
from astromesh.stores.sqlite import SQLiteBackend
from astromesh.workflows import WorkflowRun
from astromesh.workflows.engine import WorkflowEngine
from astromesh.workflows.stepfunctions.executor import EXECUTOR, StepFunctionsWorkflowExecutor
from astromesh.workflows.stepfunctions.machine import WorkflowMachine
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.stepfunctions import LocalStepFunctions


@dataclass
class Side:
    """One deployment: its agents folder (agents and workflows), state file and servers."""

    agents_dir: Path
    state: SQLiteBackend
    servers: list[ScriptedOpenAIServer]
    sfn: LocalStepFunctions | None = None

    def agent(self, name: str, server: int = 0, **spec: Any) -> None:
        write_agent(self.agents_dir, name, model=primary(self.servers[server].url), **spec)

    def workflow(self, name: str, text: str) -> None:
        (self.agents_dir / f"{name}.workflow.yaml").write_text(text)

    def push(self, server: int, *replies: Reply) -> None:
        self.servers[server].push(*replies)

    @property
    def executor(self) -> str:
        return EXECUTOR if self.sfn is not None else "local"

    @asynccontextmanager
    async def engine(self) -> AsyncIterator[WorkflowEngine]:
        """The engine an API process of this side builds (with the Step Functions executor
        on the AWS side, as ``channels.services`` wires it)."""
        runtime = AgentRuntime(self.agents_dir, env={}, state=self.state)
        engine = WorkflowEngine(runtime, inline_wait_seconds=2.0)
        if self.sfn is not None:
            machine = WorkflowMachine(self.sfn.workflow_arn, client=self.sfn.client)
            engine.executors[EXECUTOR] = StepFunctionsWorkflowExecutor(
                await engine.store(), machine
            )
        try:
            yield engine
        finally:
            await engine.aclose()
            await runtime.close()

    async def until(
        self,
        engine: WorkflowEngine,
        run_id: str,
        done: Callable[[WorkflowRun], bool],
        timeout: float = 60.0,
    ) -> WorkflowRun:
        """The run once ``done(run)``, polled from the store."""
        deadline = time.monotonic() + timeout
        while not done(run := await engine.get_run(run_id)):
            assert time.monotonic() < deadline, f"{run_id} is still {run.status.value}"
            await asyncio.sleep(0.05)
        return run

    async def suspended(self, engine: WorkflowEngine, run_id: str) -> WorkflowRun:
        """The run once it waits for a person: on the machine, once its token is stored."""

        def waiting(run: WorkflowRun) -> bool:
            if run.status.is_terminal:
                return True
            pending = run.pending_approval
            if pending is None:
                return False
            return self.sfn is None or pending.task_token is not None

        return await self.until(engine, run_id, waiting)

    async def finished(self, engine: WorkflowEngine, run_id: str) -> WorkflowRun:
        run = await self.until(engine, run_id, lambda r: r.status.is_terminal)
        if self.sfn is not None:  # and the execution has ended too
            await asyncio.to_thread(self.sfn.wait, run.execution_arn or "", 60.0)
        return run


def outcome(run: WorkflowRun) -> dict[str, Any]:
    """What must be equal between the executors: the run's status and output, and each
    step's status, output, data, error type and attempts (not error texts, which name child
    run ids, nor times)."""
    return {
        "status": run.status.value,
        "output": run.output,
        "steps": {
            name: (s.status.value, s.output, s.data, s.error_type, s.attempts)
            for name, s in sorted(run.steps.items())
        },
    }

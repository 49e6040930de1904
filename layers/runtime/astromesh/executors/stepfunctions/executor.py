"""StepFunctionsExecutor: runs go through the step loop's state machine on AWS.

Synchronous runs (a REST call waiting for its answer) use ``StartSyncExecution`` on an
Express machine; asynchronous and channel-driven runs use ``StartExecution`` on a Standard
one. Either way the execution's name is the run id, its input is ``{"run_id"}`` only, and the
run's status and result are read back from the run store, never from the execution's output.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from astromesh import pipeline
from astromesh.agent import Agent
from astromesh.executors.base import Executor
from astromesh.pipeline import done_frame
from astromesh.runs.events import EventSink, RunEvent, discard
from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.base import RunStore

EXPRESS_MAX_SECONDS = 300
"""An Express execution is stopped by AWS after five minutes, whatever the run's own limit:
a run allowed longer (``orchestration.timeout_seconds``) must not be started on one."""


class StepFunctionsExecutor(Executor):
    """Starts runs on the state machines built by :func:`build_definition`.

    Args:
        runs: the store the state machine's functions share with this process.
        express_arn: the Express machine, for :meth:`execute` (synchronous runs).
        standard_arn: the Standard machine, for :meth:`start` (asynchronous runs).
        region: AWS region of the machines (the default chain's when omitted).
        client: a ready ``stepfunctions`` client; otherwise one is created on first use
            and kept (cheap cold starts for callers that never start a run).
    """

    def __init__(
        self,
        runs: RunStore,
        *,
        express_arn: str | None = None,
        standard_arn: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.runs = runs
        self.express_arn = express_arn
        self.standard_arn = standard_arn
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        """The ``stepfunctions`` client (boto3's, untyped here to keep boto3 out of imports)."""
        if self._client is None:
            import boto3  # only processes that start runs pay for importing boto3

            self._client = boto3.client("stepfunctions", region_name=self.region)
        return self._client

    async def submit(
        self, run: RunState, agent: Agent, *, wait: bool, emit: EventSink = discard
    ) -> RunState:
        """Screen ``run`` with ``agent``'s input guardrails, create it in the store and start
        it: waiting for the end on the Express machine (``wait=True``), or returning at once
        after starting it on the Standard one.

        ``agent`` is the run's agent as this process built it (the functions build their own
        from the same documents): its guardrails run here, before the first write, so the
        store never holds the query or context unredacted (:func:`astromesh.pipeline.screen`).
        """
        await pipeline.screen(run, agent)
        await self.runs.create(run)
        if wait:
            return await self._run_sync(run, emit)
        await self.start(run)
        return run

    async def execute(self, run: RunState, agent: Agent, emit: EventSink) -> RunState:
        """Run ``run`` (already in the store) on the Express machine and return it finished.

        ``agent`` is not used here: the functions build their own from the same documents.

        Only the final ``done`` (and ``error``) events reach ``emit``: the stages run in
        other processes. If the execution itself failed before the run was finalized, the
        run is ended here as failed with the execution's error, so a caller never waits on
        a run that nothing will finish.
        """
        return await self._run_sync(run, emit)

    async def _run_sync(self, run: RunState, emit: EventSink) -> RunState:
        arn = _required(self.express_arn, "express_arn")
        answer = await asyncio.to_thread(
            self.client.start_sync_execution,
            stateMachineArn=arn,
            name=run.id,
            input=json.dumps({"run_id": run.id}),
        )
        finished = await self.runs.get(run.id)
        if not finished.status.is_terminal or finished.answer is None:
            finished = await self._fail_unfinished(finished, answer)
        if finished.status is not RunStatus.SUCCEEDED:
            error = {"code": finished.status.value, "message": finished.error, "run_id": run.id}
            await emit(RunEvent("error", error))
        await emit(RunEvent("done", done_frame(finished)))
        return finished

    async def start(self, run: RunState) -> str:
        """Start ``run`` (already in the store) on the Standard machine; return the
        execution's ARN. Follow it with :meth:`get`."""
        arn = _required(self.standard_arn, "standard_arn")
        started = await asyncio.to_thread(
            self.client.start_execution,
            stateMachineArn=arn,
            name=run.id,
            input=json.dumps({"run_id": run.id}),
        )
        return started["executionArn"]

    async def get(self, run_id: str) -> RunState:
        """The run as the store holds it now (its status, steps, answer)."""
        return await self.runs.get(run_id)

    async def _fail_unfinished(self, run: RunState, answer: dict[str, Any]) -> RunState:
        status = answer.get("status", "UNKNOWN")
        detail = answer.get("error") or answer.get("cause") or "no error reported"
        run.status = RunStatus.TIMED_OUT if status == "TIMED_OUT" else RunStatus.FAILED
        run.error = f"execution {status.lower()}: {detail}"
        run.answer = run.answer or ""
        run.record("stopped", code="execution_" + status.lower(), reason=run.error)
        await self.runs.save(run)
        return run


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ValueError(f"StepFunctionsExecutor needs {name} for this call")
    return value

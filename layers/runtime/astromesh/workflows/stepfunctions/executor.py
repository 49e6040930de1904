"""The Step Functions executor of workflows: what the API does when runs go to AWS.

A run (stored by the engine, ``executor: stepfunctions``) gets its execution's ARN, known in
advance from the machine's name and the run's id, then its execution is started; from there
the workflow machine's functions drive it over the same store. Deciding an approval or
resuming a wait answers the stored task token (:class:`WorkflowMachine`); the machine then
applies the outcome through the interpreter, so the caller reads the run moving on from the
store rather than from this call.
"""

from __future__ import annotations

from typing import Any

from astromesh.config.workflow import WorkflowDocument
from astromesh.errors import ConflictError
from astromesh.workflows.actions import Approved, Outcome, Rejected
from astromesh.workflows.executor import WorkflowExecutor
from astromesh.workflows.run import WorkflowRun
from astromesh.workflows.stepfunctions.machine import WorkflowMachine
from astromesh.workflows.store import WorkflowRunStore

EXECUTOR = "stepfunctions"


class StepFunctionsWorkflowExecutor(WorkflowExecutor):
    """Starts workflow runs on the workflow machine and answers what they wait on.

    Args:
        store: the workflow run store the machine's functions share with this process.
        machine: the workflow machine.
    """

    name = EXECUTOR

    def __init__(self, store: WorkflowRunStore, machine: WorkflowMachine) -> None:
        self.store = store
        self.machine = machine

    async def start(self, workflow: WorkflowDocument, run: WorkflowRun) -> WorkflowRun:
        """Record the execution's ARN on ``run`` (stored), then start the execution; the
        run as stored, still running (the machine drives it from here)."""
        run.executor = EXECUTOR
        run.execution_arn = self.machine.execution_arn(run.id)
        run = await self.store.save(run)
        await self.machine.start(run.id)
        return run

    async def resume_approval(self, run: WorkflowRun, outcome: Outcome) -> WorkflowRun:
        """Answer the approval ``run`` waits on: ``Approved`` is the task token's success,
        ``Rejected`` its failure. The machine applies it (``on_reject`` included).

        Raises:
            ConflictError: the run waits on no approval, its token is not stored yet (the
                machine is storing it: retry), or the task no longer waits.
        """
        if not isinstance(outcome, Approved | Rejected):
            raise ConflictError(
                "on Step Functions an approval's timeout is the machine's (TimeoutSeconds)"
            )
        pending = run.pending_approval
        if pending is None:
            raise ConflictError(f"workflow run {run.id} is not awaiting an approval")
        await self.machine.decide(
            _token(run, pending.task_token),
            {
                "decision": "approved" if isinstance(outcome, Approved) else "rejected",
                "approver": outcome.approver,
                "comment": outcome.comment,
            },
            approved=isinstance(outcome, Approved),
        )
        return await self.store.get(run.id)

    async def resume_wait(self, run: WorkflowRun, payload: dict[str, Any]) -> WorkflowRun:
        """Resume a wait that lasts until resumed: its token's success carries ``payload``
        (the wait step's output)."""
        await self.machine.decide(_token(run, run.task_token), {"payload": payload}, approved=True)
        return await self.store.get(run.id)


def _token(run: WorkflowRun, token: str | None) -> str:
    if token is None:
        raise ConflictError(
            f"workflow run {run.id} is not waiting on the state machine yet (its task token"
            " is being stored); retry in a moment"
        )
    return token

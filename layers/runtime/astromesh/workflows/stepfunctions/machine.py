"""The API's side of the workflow machine: start a run's execution, answer its approval.

The execution's name is the run's id and its input ``{"run_id"}``; everything else is read
from the run store by the machine's functions. An approval waiting on the machine is answered
with its stored task token: ``SendTaskSuccess`` carries the decision, ``SendTaskFailure``
with :data:`~astromesh.workflows.stepfunctions.definition.REJECTED` a rejection; the machine
then applies it through the interpreter (``on_reject``, the next step). Only the API function
is allowed these two calls (infra/stacks/runtime.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from astromesh.errors import ConflictError
from astromesh.workflows.stepfunctions.definition import REJECTED

MAX_CAUSE_CHARS = 32768
"""``SendTaskFailure``'s ``cause`` limit."""

_TOKEN_GONE = ("TaskDoesNotExist", "TaskTimedOut", "InvalidToken")
"""Answers for a token whose task no longer waits (decided, timed out, execution ended)."""


class WorkflowMachine:
    """Starts workflow executions and answers their approvals.

    Args:
        arn: the workflow machine (``ASTROMESH_SFN_WORKFLOW_ARN``).
        region: its region (the default chain's when omitted).
        client: a ready ``stepfunctions`` client; otherwise one is created on first use.
    """

    def __init__(self, arn: str, *, region: str | None = None, client: Any = None) -> None:
        self.arn = arn
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # only processes that start workflows pay for importing boto3

            self._client = boto3.client("stepfunctions", region_name=self.region)
        return self._client

    def execution_arn(self, run_id: str) -> str:
        """The ARN the execution of ``run_id`` has (executions are named by run id)."""
        head, _, name = self.arn.rpartition(":stateMachine:")
        return f"{head}:execution:{name}:{run_id}"

    async def start(self, run_id: str) -> str:
        """Start the execution of ``run_id`` (already in the store); its ARN."""
        started = await asyncio.to_thread(
            self.client.start_execution,
            stateMachineArn=self.arn,
            name=run_id,
            input=json.dumps({"run_id": run_id}),
        )
        return started["executionArn"]

    async def decide(self, task_token: str, answer: dict[str, Any], *, approved: bool) -> None:
        """Answer the task waiting on ``task_token``: its success with ``answer`` as output,
        or (``approved=False``) its failure with :data:`REJECTED` and ``answer`` as cause.

        Raises:
            ConflictError: the task no longer waits (already answered, timed out, or its
                execution ended): the answer changes nothing.
        """
        try:
            if approved:
                await asyncio.to_thread(
                    self.client.send_task_success, taskToken=task_token, output=json.dumps(answer)
                )
            else:
                await asyncio.to_thread(
                    self.client.send_task_failure,
                    taskToken=task_token,
                    error=REJECTED,
                    cause=json.dumps(answer)[:MAX_CAUSE_CHARS],
                )
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _TOKEN_GONE:
                raise ConflictError(
                    f"the workflow run no longer waits on this ({code}): it was answered or"
                    " timed out"
                ) from exc
            raise

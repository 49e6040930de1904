"""Work after the response: the function invokes itself asynchronously (``InvocationType=Event``).

A channel must acknowledge at once (Meta retries a webhook that is slow to answer; API
Gateway gives a WebSocket route 29 seconds) but the agent's run, and the reply that follows
it, take longer. Locally a background task does that; a Lambda is frozen as soon as it
returns, so here the acknowledging invocation hands the work to a second, asynchronous
invocation of the same function, whose event is ``{JOB_KEY: {...}}``.

Why not a Standard Step Functions execution (``StepFunctionsExecutor.start``): the step-loop
state machine ends at ``Finalize`` and has no step that delivers a channel reply or pushes
WebSocket frames, so something would still have to wait for the execution's end and then
reply, i.e. a second invocation anyway, plus polling. The self-invocation runs the loop
in-process with the same runtime (``LocalExecutor``, agent tools and all), streams frames
as they happen, and replies when it ends; its limit is Lambda's 15 minutes per run, ample
for a chat turn. Lambda's own async retries must be off for these functions (the infra sets
``MaximumRetryAttempts=0``): a retried job would run the agent and reply twice.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

JOB_KEY = "astromesh_job"
"""Marks a self-invocation's event: ``{"astromesh_job": {"kind": ..., ...}}``."""

_clients: dict[str, Any] = {}


class HasFunctionArn(Protocol):
    invoked_function_arn: str


def lambda_client() -> Any:
    """The container's ``lambda`` client, created on first use (boto3 stays out of the
    import of a handler that never dispatches)."""
    if "lambda" not in _clients:
        import boto3

        _clients["lambda"] = boto3.client("lambda")
    return _clients["lambda"]


def dispatch(context: HasFunctionArn, job: dict[str, Any]) -> None:
    """Invoke this very function (same version or alias) asynchronously with ``job``.

    Raises:
        botocore.exceptions.ClientError / BotoCoreError: the invocation was not accepted.
    """
    lambda_client().invoke(
        FunctionName=context.invoked_function_arn,
        InvocationType="Event",
        Payload=json.dumps({JOB_KEY: job}).encode(),
    )

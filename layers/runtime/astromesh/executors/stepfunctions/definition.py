"""The state machine of the step loop, as Amazon States Language, built once in code.

It is the loop :class:`~astromesh.executors.local.LocalExecutor` runs in-process, with every
stage a Lambda task on :class:`~astromesh.executors.driver.StepDriver`::

    Prepare -> Step -> Decide -> act:    Act (Map: one ExecuteTool task per call) -> Step
                              -> finish / fail: Finalize
    any task failing for good (Catch States.ALL) -> FinalizeError (the run ends with the error)

``Step`` observes the previous Act's results and decides in one Lambda invocation, so an
iteration with n tool calls costs 3 + n transitions (Step, Decide, Act, ExecuteTool x n);
there is no ``Observe`` task (the handler still answers one, for executions started on the
definition that had it).

Payloads carry ids only: ``{"run_id", "acted"}``, the step's answer ``{"next", "actions":
[{"run_id", "call_id"}...]}`` and what each call answered, ``acted``: ``[{"call_id", "ok",
"child_run_id"}...]`` (empty before the first Step, replaced by every Act); so they stay a few
hundred bytes however long the conversation is (the limit is 256 KB).

The Lambda ARNs are parameters; the defaults are ``${...}`` placeholders for CloudFormation's
``DefinitionSubstitutions``. JSONPath only (no JSONata).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from astromesh.executors.driver import TransientProviderFailure
from astromesh.pipeline import MAX_PARALLEL_ACTIONS

PREPARE = "Prepare"
STEP = "Step"
DECIDE = "Decide"
ACT = "Act"
EXECUTE_TOOL = "ExecuteTool"
FINALIZE = "Finalize"
FINALIZE_ERROR = "FinalizeError"
NO_DECISION = "NoDecision"

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
"""Errors of the Lambda service itself (throttling, a hiccup): the function did not run, so
the task is simply tried again."""

NEXT_STATES = {"act": ACT, "finish": FINALIZE, "fail": FINALIZE}
"""Where each answer of ``step`` leads (the Choice state's rules)."""


@dataclass(frozen=True, slots=True)
class StateMachineDefinition:
    """An ASL document; :meth:`to_json` is what ``CreateStateMachine`` and CDK take."""

    asl: dict[str, Any]

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.asl, indent=indent)


def build_definition(
    orchestration_step_arn: str = "${OrchestrationStepFunctionArn}",
    tool_executor_arn: str = "${ToolExecutorFunctionArn}",
    *,
    max_concurrency: int = MAX_PARALLEL_ACTIONS,
    provider_retry_seconds: int = 5,
    provider_retry_attempts: int = 2,
) -> StateMachineDefinition:
    """The step loop's state machine.

    Args:
        orchestration_step_arn: the ``orchestration_step`` function (prepare/step/finalize).
        tool_executor_arn: the ``tool_executor`` function (one tool call per Map item).
        max_concurrency: tool calls of one step run at most this many at a time (as locally).
        provider_retry_seconds / provider_retry_attempts: how a step whose every model
            candidate failed transiently is retried (doubling the wait each time) before the
            run fails with that error.
    """

    def step_task(action: str, **fields: Any) -> dict[str, Any]:
        return _invoke(orchestration_step_arn, {"action": action, "run_id.$": "$.run_id", **fields})

    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FINALIZE_ERROR}]
    provider_retry = {
        "ErrorEquals": [TransientProviderFailure.__name__],
        "IntervalSeconds": provider_retry_seconds,
        "MaxAttempts": provider_retry_attempts,
        "BackoffRate": 2.0,
    }
    finalize_result = {"run_id.$": "$.Payload.run_id", "status.$": "$.Payload.status"}
    states: dict[str, Any] = {
        PREPARE: {
            **step_task("prepare"),
            "ResultSelector": {"run_id.$": "$.Payload.run_id", "acted": []},
            "Catch": catch,
            "Next": STEP,
        },
        STEP: {
            **step_task("step", **{"acted.$": "$.acted"}),
            "Retry": [LAMBDA_RETRY, provider_retry],
            "ResultSelector": {"next.$": "$.Payload.next", "actions.$": "$.Payload.actions"},
            "ResultPath": "$.step",
            "Catch": catch,
            "Next": DECIDE,
        },
        DECIDE: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.step.next", "StringEquals": answer, "Next": state}
                for answer, state in NEXT_STATES.items()
            ],
            "Default": NO_DECISION,
        },
        NO_DECISION: {
            "Type": "Pass",
            "Result": {"Error": "States.NoChoiceMatched", "Cause": "step answered no known next"},
            "ResultPath": "$.error",
            "Next": FINALIZE_ERROR,
        },
        ACT: {
            "Type": "Map",
            "ItemsPath": "$.step.actions",
            "MaxConcurrency": max_concurrency,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": EXECUTE_TOOL,
                "States": {
                    EXECUTE_TOOL: {
                        **_invoke(tool_executor_arn, None),
                        "ResultSelector": {
                            "call_id.$": "$.Payload.call_id",
                            "ok.$": "$.Payload.ok",
                            "child_run_id.$": "$.Payload.child_run_id",
                        },
                        "End": True,
                    }
                },
            },
            "ResultPath": "$.acted",
            "Catch": catch,
            "Next": STEP,
        },
        FINALIZE: {**step_task("finalize"), "ResultSelector": finalize_result, "End": True},
        FINALIZE_ERROR: {
            **step_task("finalize", **{"error.$": "$.error"}),
            "ResultSelector": finalize_result,
            "End": True,
        },
    }
    return StateMachineDefinition(
        {
            "Comment": "Astromesh step loop: prepare -> (step -> act)* -> step -> finalize",
            "QueryLanguage": "JSONPath",
            "StartAt": PREPARE,
            "States": states,
        }
    )


LAMBDA_RETRY: dict[str, Any] = {
    "ErrorEquals": LAMBDA_SERVICE_ERRORS,
    "IntervalSeconds": 1,
    "MaxAttempts": 3,
    "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}


def _invoke(function_arn: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    """A Lambda task; ``payload=None`` passes the state's input (a Map item) as it is.

    Every task retries the Lambda service's own errors."""
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {
            "FunctionName": function_arn,
            **({"Payload.$": "$"} if payload is None else {"Payload": payload}),
        },
        "Retry": [LAMBDA_RETRY],
    }

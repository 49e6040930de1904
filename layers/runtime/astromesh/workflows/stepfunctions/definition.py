"""The one Standard state machine that runs every Workflow, as Amazon States Language.

The machine knows no workflow: it asks the ``workflow_step`` function what to do next and
does it, so a workflow registered through the API runs without a deploy (one machine per
document would need a CloudFormation change per registration)::

    Advance -> Dispatch: run_agent      -> RunAgent (child run, agent machine, .sync:2) -> Apply
                         call_tool      -> CallTool (tool_executor)                        -> Apply
                         wait           -> Wait (SecondsPath) -> Waited                     -> Apply
                         await_approval -> AwaitApproval (lambda .waitForTaskToken)         -> Apply
                         await_resume   -> AwaitResume (the same, for a wait until resumed) -> Apply
                         parallel       -> Branches (Map: Dispatch -> agent|tool|wait -> Apply)
                                           -> Advance
                         finish         -> Finished: completed | rejected -> Succeed, else Fail
    Apply -> Advance;  a task failing for good (Catch States.ALL) -> FinalizeError -> Fail

Every state's data is ``{"run_id", "next", "result"?}``: ``next`` is the action the
interpreter chose (ids and a few numbers, see :mod:`astromesh.workflows.stepfunctions.actions`),
``result`` what the dispatched state answered (the child execution's status, a tool call's
``ok``, the approval's decision, or a caught error ``{"Error", "Cause"}``); inputs and
outputs stay in the run store, so payloads are a few hundred bytes (the limit is 256 KB).

Step retries, backoff and ``on_error`` are the interpreter's (a generic machine cannot carry
per-workflow Retry blocks): a failed step is applied as an error and the next ``Advance``
answers a Wait and the step again, or the ``on_error`` target. ASL ``Retry`` is only for the
Lambda service's own errors, as on the agent machine.

An approval's task token is stored with the pending approval by the ``await_approval`` call;
``SendTaskSuccess`` (approve, output ``{"decision": "approved", ...}``) or ``SendTaskFailure``
(reject, error :data:`REJECTED`) from the API resumes it, and the step's ``timeout_seconds``
ends it with ``States.Timeout``; all three are applied by the interpreter.

ARNs are parameters whose defaults are ``${...}`` placeholders for CloudFormation's
``DefinitionSubstitutions``. JSONPath only (no JSONata).
"""

from __future__ import annotations

from typing import Any

from astromesh.executors.stepfunctions.definition import (
    LAMBDA_INVOKE,
    LAMBDA_RETRY,
    StateMachineDefinition,
)

ADVANCE = "Advance"
DISPATCH = "Dispatch"
RUN_AGENT = "RunAgent"
CALL_TOOL = "CallTool"
WAIT = "Wait"
WAITED = "Waited"
AWAIT_APPROVAL = "AwaitApproval"
AWAIT_RESUME = "AwaitResume"
BRANCHES = "Branches"
APPLY = "Apply"
FINISHED = "Finished"
DONE = "Done"
FAILED = "Failed"
FINALIZE_ERROR = "FinalizeError"
NO_ACTION = "NoAction"

START_EXECUTION_SYNC = "arn:aws:states:::states:startExecution.sync:2"
WAIT_FOR_TOKEN = LAMBDA_INVOKE + ".waitForTaskToken"

REJECTED = "WorkflowApprovalRejected"
"""The error ``SendTaskFailure`` carries when an approver rejects (the interpreter applies it
as ``rejected``, following the step's ``on_reject``)."""

MAX_TASK_SECONDS = 365 * 24 * 3600
"""A step without a timeout (an approval, an agent step) may last as long as a Standard
execution runs: a year."""

SUCCEEDING_STATUSES = ("completed", "rejected")
"""Workflow run statuses that end the execution as succeeded; any other ends it failed, so
the machine's ``ExecutionsFailed`` alarm counts failed and timed-out workflow runs."""

KINDS = ("run_agent", "call_tool", "wait", "await_approval", "await_resume", "parallel", "finish")
"""The ``next.kind`` values ``Advance`` answers: the interpreter's action kinds
(:mod:`astromesh.workflows.actions`), a wait that lasts until resumed being ``await_resume``
(a task token, like an approval) rather than ``wait`` (a Wait state)."""

BRANCH_KINDS = ("run_agent", "call_tool", "wait")
"""What a parallel step's branch may be: an agent or tool step, or its retry's backoff."""


def build_workflow_definition(
    workflow_step_arn: str = "${WorkflowStepFunctionArn}",
    tool_executor_arn: str = "${ToolExecutorFunctionArn}",
    agent_machine_arn: str = "${AgentStateMachineArn}",
    *,
    max_concurrency: int = 10,
) -> StateMachineDefinition:
    """The workflow machine.

    Args:
        workflow_step_arn: the ``workflow_step`` function (advance / apply / await_approval /
            fail).
        tool_executor_arn: the ``tool_executor`` function, for tool steps.
        agent_machine_arn: the agent runs' Standard machine; each agent step is a child
            execution of it, named by the child run's id.
        max_concurrency: branches of a parallel step run at most this many at a time.
    """

    def step_task(action: str, **fields: Any) -> dict[str, Any]:
        return _invoke(workflow_step_arn, {"action": action, "run_id.$": "$.run_id", **fields})

    catch_all = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FINALIZE_ERROR}]
    failure_is_result = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.result", "Next": APPLY}]

    def dispatch(states: dict[str, Any], kinds: tuple[str, ...], no_action: str) -> None:
        """The Choice on ``next.kind`` and the states that run an agent or tool step; shared
        by the top level and each branch of a parallel step."""
        states[DISPATCH] = {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.next.kind", "StringEquals": kind, "Next": _STATE_OF[kind]}
                for kind in kinds
            ],
            "Default": no_action,
        }
        states[RUN_AGENT] = {
            "Type": "Task",
            "Resource": START_EXECUTION_SYNC,
            "Parameters": {
                "StateMachineArn": agent_machine_arn,
                "Name.$": "$.next.child_run_id",
                "Input": {"run_id.$": "$.next.child_run_id"},
            },
            "TimeoutSecondsPath": "$.next.timeout_seconds",
            "ResultSelector": {"status.$": "$.Status"},
            "ResultPath": "$.result",
            "Catch": failure_is_result,
            "Next": APPLY,
        }
        states[CALL_TOOL] = {
            **_invoke(tool_executor_arn, {"workflow_run_id.$": "$.run_id", "next.$": "$.next"}),
            "ResultSelector": {"ok.$": "$.Payload.ok"},
            "ResultPath": "$.result",
            "Catch": failure_is_result,
            "Next": APPLY,
        }
        states[WAIT] = {"Type": "Wait", "SecondsPath": "$.next.seconds", "Next": WAITED}
        states[WAITED] = {
            "Type": "Pass",
            "Result": {"waited": True},
            "ResultPath": "$.result",
            "Next": APPLY,
        }
        states[APPLY] = {
            **step_task("apply", **{"next.$": "$.next", "result.$": "$.result"}),
            "ResultPath": None,
        }

    states: dict[str, Any] = {
        ADVANCE: {
            **step_task("advance"),
            "ResultSelector": {"run_id.$": "$.Payload.run_id", "next.$": "$.Payload.next"},
            "ResultPath": "$",
            "Catch": catch_all,
            "Next": DISPATCH,
        },
    }

    def token_task(action: str) -> dict[str, Any]:
        """A Lambda task that stores its task token and waits for it to be answered (or for
        ``next.timeout_seconds``); a decision, a rejection or a timeout goes to Apply."""
        return {
            "Type": "Task",
            "Resource": WAIT_FOR_TOKEN,
            "Parameters": {
                "FunctionName": workflow_step_arn,
                "Payload": {
                    "action": action,
                    "run_id.$": "$.run_id",
                    "next.$": "$.next",
                    "task_token.$": "$$.Task.Token",
                },
            },
            "TimeoutSecondsPath": "$.next.timeout_seconds",
            "Retry": [LAMBDA_RETRY],
            "ResultPath": "$.result",
            "Catch": [
                {
                    "ErrorEquals": ["States.Timeout", REJECTED],
                    "ResultPath": "$.result",
                    "Next": APPLY,
                },
                *catch_all,
            ],
            "Next": APPLY,
        }

    dispatch(states, KINDS, NO_ACTION)
    states[APPLY] |= {"Catch": catch_all, "Next": ADVANCE}
    states |= {
        AWAIT_APPROVAL: token_task("await_approval"),
        AWAIT_RESUME: token_task("await_resume"),
        BRANCHES: {
            "Type": "Map",
            "ItemsPath": "$.next.branches",
            "ItemSelector": {"run_id.$": "$.run_id", "next.$": "$$.Map.Item.Value"},
            "MaxConcurrency": max_concurrency,
            "ItemProcessor": _branch_processor(dispatch),
            "ResultPath": None,
            "Catch": catch_all,
            "Next": ADVANCE,
        },
        FINISHED: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.next.status", "StringEquals": status, "Next": DONE}
                for status in SUCCEEDING_STATUSES
            ],
            "Default": FAILED,
        },
        DONE: {"Type": "Succeed"},
        FAILED: {"Type": "Fail", "Error": "WorkflowRunFailed", "Cause": "see the workflow run"},
        NO_ACTION: {
            "Type": "Pass",
            "Result": {
                "Error": "States.NoChoiceMatched",
                "Cause": "advance answered no known kind",
            },
            "ResultPath": "$.error",
            "Next": FINALIZE_ERROR,
        },
        FINALIZE_ERROR: {
            **step_task("fail", **{"error.$": "$.error"}),
            "ResultPath": None,
            "Next": FAILED,
        },
    }
    return StateMachineDefinition(
        {
            "Comment": "Astromesh workflows: advance -> (dispatch -> apply)* -> finish",
            "QueryLanguage": "JSONPath",
            "StartAt": ADVANCE,
            "States": states,
        }
    )


_STATE_OF = {
    "run_agent": RUN_AGENT,
    "call_tool": CALL_TOOL,
    "wait": WAIT,
    "await_approval": AWAIT_APPROVAL,
    "await_resume": AWAIT_RESUME,
    "parallel": BRANCHES,
    "finish": FINISHED,
}


def _branch_processor(dispatch: Any) -> dict[str, Any]:
    """One branch of a parallel step: the same agent, tool and wait states, ending at its
    Apply.

    A branch that fails is applied as an error like any step; only a failure of Apply itself
    fails the Map (and the run, through its Catch)."""
    states: dict[str, Any] = {
        NO_ACTION: {
            "Type": "Fail",
            "Error": "States.NoChoiceMatched",
            "Cause": "a parallel branch is not an agent or tool step or a backoff",
        }
    }
    dispatch(states, BRANCH_KINDS, NO_ACTION)
    states[APPLY]["End"] = True
    return {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": DISPATCH, "States": states}


def _invoke(function_arn: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A Lambda task that retries the Lambda service's own errors."""
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": function_arn, "Payload": payload},
        "Retry": [LAMBDA_RETRY],
    }

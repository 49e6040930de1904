"""The workflow machine's ASL: well formed, every state reachable, one Dispatch per kind, an
approval that waits on a task token, ids-only payloads, failures that end the run."""

from __future__ import annotations

from typing import Any

import pytest

from astromesh.executors.stepfunctions.definition import LAMBDA_SERVICE_ERRORS
from astromesh.workflows.stepfunctions.definition import (
    ADVANCE,
    APPLY,
    AWAIT_APPROVAL,
    AWAIT_RESUME,
    BRANCHES,
    CALL_TOOL,
    DISPATCH,
    FAILED,
    FINALIZE_ERROR,
    FINISHED,
    KINDS,
    REJECTED,
    RUN_AGENT,
    START_EXECUTION_SYNC,
    WAIT,
    WAIT_FOR_TOKEN,
    build_workflow_definition,
)
from tests.executors.test_definition import scopes, strings, targets

STEP_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:workflow-step"
TOOL_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:tool-executor"
AGENT_ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:runs-standard"


@pytest.fixture
def asl() -> dict[str, Any]:
    return build_workflow_definition(STEP_ARN, TOOL_ARN, AGENT_ARN).asl


def test_every_target_exists_and_every_state_is_reachable(asl):
    for machine in scopes(asl):
        states = machine["States"]
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += targets(states[name])
        assert seen == set(states), f"unreachable: {set(states) - seen}"
        for name, state in states.items():
            ends = state.get("End") is True or state["Type"] in ("Choice", "Succeed", "Fail")
            assert ends or "Next" in state, f"{name} leads nowhere"


def test_dispatch_covers_every_kind_and_loops_through_apply(asl):
    states = asl["States"]
    assert asl["StartAt"] == ADVANCE and states[ADVANCE]["Next"] == DISPATCH
    rules = {c["StringEquals"]: c["Next"] for c in states[DISPATCH]["Choices"]}
    assert set(rules) == set(KINDS)
    assert rules["parallel"] == BRANCHES and rules["finish"] == FINISHED
    for kind in ("run_agent", "call_tool", "await_approval", "await_resume"):
        assert states[rules[kind]]["Next"] == APPLY
    assert states[APPLY]["Next"] == ADVANCE and states[BRANCHES]["Next"] == ADVANCE
    assert states[WAIT]["SecondsPath"] == "$.next.seconds"


@pytest.mark.parametrize("state", [AWAIT_APPROVAL, AWAIT_RESUME])
def test_an_approval_waits_on_a_task_token_with_the_steps_timeout(asl, state):
    approval = asl["States"][state]
    assert (
        approval["Resource"] == WAIT_FOR_TOKEN == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    )
    assert approval["Parameters"]["FunctionName"] == STEP_ARN
    assert approval["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert approval["TimeoutSecondsPath"] == "$.next.timeout_seconds"
    decided = approval["Catch"][0]
    assert decided["ErrorEquals"] == ["States.Timeout", REJECTED] and decided["Next"] == APPLY
    assert approval["Catch"][-1]["Next"] == FINALIZE_ERROR


def test_agent_steps_are_child_executions_of_the_agent_machine(asl):
    for machine in scopes(asl):
        run = machine["States"][RUN_AGENT]
        assert run["Resource"] == START_EXECUTION_SYNC
        assert run["Parameters"] == {
            "StateMachineArn": AGENT_ARN,
            "Name.$": "$.next.child_run_id",
            "Input": {"run_id.$": "$.next.child_run_id"},
        }
        assert run["TimeoutSecondsPath"] == "$.next.timeout_seconds"  # the step's timeout
        # a failed child is the step's error (the interpreter retries or routes it)
        assert run["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.result", "Next": APPLY}
        ]
        assert machine["States"][CALL_TOOL]["Parameters"]["FunctionName"] == TOOL_ARN


def test_parallel_branches_run_agent_and_tool_steps_each_applied(asl):
    branches = asl["States"][BRANCHES]
    assert branches["Type"] == "Map" and branches["ItemsPath"] == "$.next.branches"
    inner = branches["ItemProcessor"]["States"]
    assert {c["StringEquals"] for c in inner[DISPATCH]["Choices"]} == {
        "run_agent",
        "call_tool",
        "wait",
    }
    assert inner[APPLY]["End"] is True


def test_only_lambda_service_errors_are_retried_and_failures_finalize(asl):
    for machine in scopes(asl):
        for name, state in machine["States"].items():
            if state["Type"] != "Task" or state["Resource"] == START_EXECUTION_SYNC:
                continue
            retried = [e for r in state["Retry"] for e in r["ErrorEquals"]]
            assert retried == LAMBDA_SERVICE_ERRORS, name
    for name in (ADVANCE, APPLY, BRANCHES):
        assert asl["States"][name]["Catch"][-1]["Next"] == FINALIZE_ERROR
    assert asl["States"][FINALIZE_ERROR]["Next"] == FAILED
    assert asl["States"][FAILED]["Type"] == "Fail"


def test_payloads_are_ids_and_jsonpath_only(asl):
    assert asl["States"][ADVANCE]["ResultSelector"] == {
        "run_id.$": "$.Payload.run_id",
        "next.$": "$.Payload.next",
    }
    assert asl["States"][CALL_TOOL]["ResultSelector"] == {"ok.$": "$.Payload.ok"}
    assert asl["QueryLanguage"] == "JSONPath"
    assert not [s for s in strings(asl) if "{%" in s]


def test_placeholders_for_cloudformation():
    placeholders = build_workflow_definition().to_json()
    for name in ("WorkflowStepFunctionArn", "ToolExecutorFunctionArn", "AgentStateMachineArn"):
        assert "${" + name + "}" in placeholders

"""The ASL document: well formed, every state reachable, the loop's shape, ids-only payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from astromesh.executors.stepfunctions import build_definition
from astromesh.executors.stepfunctions.definition import (
    ACT,
    DECIDE,
    EXECUTE_TOOL,
    FINALIZE,
    FINALIZE_ERROR,
    LAMBDA_SERVICE_ERRORS,
    PREPARE,
    STEP,
)
from astromesh.pipeline import MAX_PARALLEL_ACTIONS

STEP_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:orchestration-step"
TOOL_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:tool-executor"


@pytest.fixture
def asl() -> dict[str, Any]:
    return build_definition(STEP_ARN, TOOL_ARN).asl


def scopes(machine: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The machine and every nested state machine (Map item processors)."""
    yield machine
    for state in machine["States"].values():
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner is not None:
            yield from scopes(inner)


def targets(state: dict[str, Any]) -> list[str]:
    """Every state name this state can go to."""
    out = [state["Next"]] if "Next" in state else []
    out += [choice["Next"] for choice in state.get("Choices", [])]
    out += [state["Default"]] if "Default" in state else []
    out += [catch["Next"] for catch in state.get("Catch", [])]
    return out


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def test_every_target_exists_and_every_state_is_reachable(asl):
    for machine in scopes(asl):
        states = machine["States"]
        assert machine["StartAt"] in states
        for name, state in states.items():
            for target in targets(state):
                assert target in states, f"{name} -> {target} does not exist"
            ends = state.get("End") is True or state["Type"] in ("Choice", "Succeed", "Fail")
            assert ends or "Next" in state, f"{name} leads nowhere"
        seen, todo = set(), [machine["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo += targets(states[name])
        assert seen == set(states), f"unreachable: {set(states) - seen}"


def test_the_loop_has_the_protocols_shape(asl):
    states = asl["States"]
    assert asl["StartAt"] == PREPARE
    # Step observes the last Act's results and decides: no Observe state in the loop
    assert [states[s]["Next"] for s in (PREPARE, STEP, ACT)] == [STEP, DECIDE, STEP]
    assert "Observe" not in states
    rules = {c["StringEquals"]: c["Next"] for c in states[DECIDE]["Choices"]}
    assert {c["Variable"] for c in states[DECIDE]["Choices"]} == {"$.step.next"}
    assert rules == {"act": ACT, "finish": FINALIZE, "fail": FINALIZE}
    assert states[FINALIZE]["End"] and states[FINALIZE_ERROR]["End"]
    act = states[ACT]
    assert act["Type"] == "Map" and act["ItemsPath"] == "$.step.actions"
    assert act["MaxConcurrency"] == MAX_PARALLEL_ACTIONS
    tool = act["ItemProcessor"]["States"][EXECUTE_TOOL]
    assert tool["Parameters"] == {"FunctionName": TOOL_ARN, "Payload.$": "$"}


def test_every_task_calls_the_right_function_with_ids_only(asl):
    for name in (PREPARE, STEP, FINALIZE, FINALIZE_ERROR):
        task = asl["States"][name]
        assert task["Type"] == "Task" and task["Parameters"]["FunctionName"] == STEP_ARN
        payload = task["Parameters"]["Payload"]
        assert payload["run_id.$"] == "$.run_id"
        assert set(payload) <= {"action", "run_id.$", "error.$", "acted.$"}
    assert asl["States"][FINALIZE_ERROR]["Parameters"]["Payload"]["error.$"] == "$.error"
    assert asl["States"][STEP]["Parameters"]["Payload"]["acted.$"] == "$.acted"
    # what reaches the state data: nothing but ids, the step's answer and the calls' answers
    assert asl["States"][STEP]["ResultSelector"] == {
        "next.$": "$.Payload.next",
        "actions.$": "$.Payload.actions",
    }
    act = asl["States"][ACT]
    assert act["ResultPath"] == "$.acted"
    assert act["ItemProcessor"]["States"][EXECUTE_TOOL]["ResultSelector"] == {
        "call_id.$": "$.Payload.call_id",
        "ok.$": "$.Payload.ok",
        "child_run_id.$": "$.Payload.child_run_id",
    }
    # before the first Step the state is the run id and no calls' answers
    assert asl["States"][PREPARE]["ResultSelector"] == {"run_id.$": "$.Payload.run_id", "acted": []}
    assert "ResultPath" not in asl["States"][PREPARE]


def test_every_task_retries_lambda_errors_and_failures_end_in_finalize_error(asl):
    for machine in scopes(asl):
        for name, state in machine["States"].items():
            if state["Type"] != "Task":
                continue
            retried = [e for r in state["Retry"] for e in r["ErrorEquals"]]
            assert set(LAMBDA_SERVICE_ERRORS) <= set(retried), name
    for name in (PREPARE, STEP, ACT):
        assert asl["States"][name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FINALIZE_ERROR}
        ]
    provider = asl["States"][STEP]["Retry"][1]
    assert provider["ErrorEquals"] == ["TransientProviderFailure"]
    assert provider["BackoffRate"] > 1


def test_jsonpath_only(asl):
    assert asl["QueryLanguage"] == "JSONPath"
    found = list(strings(asl))
    assert not [s for s in found if "{%" in s]
    assert "JSONata" not in found and "Arguments" not in found and "Output" not in found


def test_parameters_and_json():
    definition = build_definition(
        STEP_ARN, TOOL_ARN, max_concurrency=3, provider_retry_seconds=7, provider_retry_attempts=4
    )
    assert definition.asl["States"][ACT]["MaxConcurrency"] == 3
    provider = definition.asl["States"][STEP]["Retry"][1]
    assert (provider["IntervalSeconds"], provider["MaxAttempts"]) == (7, 4)
    assert json.loads(definition.to_json()) == definition.asl
    placeholders = build_definition().to_json()
    assert "${OrchestrationStepFunctionArn}" in placeholders
    assert "${ToolExecutorFunctionArn}" in placeholders

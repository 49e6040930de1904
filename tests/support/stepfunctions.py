"""The step loop's state machines executed by moto, their Lambda tasks bound to ``functions/``.

The emulation is the product's (:mod:`astromesh.local`): moto's interpreter runs the
runtime's ASL with ``StartSyncExecution`` and its speed fixes
(:func:`astromesh.local.moto_hooks.step_functions`), and each Lambda task runs the real
``handler.py`` in an emulated container (:class:`astromesh.local.lambdas.LambdaFunction`:
a cold start imports it afresh, a warm container is reused, a busy one makes another, as when
a Map runs tool calls in parallel). Here moto is ``mock_aws`` in the test's process and the
handlers read the test's environment; ``astromesh local`` runs the same pieces on moto's
server with each function's template environment.

    with LocalStepFunctions() as sfn:        # the env (agents dir, state path) set before
        description = sfn.run(run_id)        # start, wait, describe
        sfn.history(description["executionArn"])
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from unittest import mock

import boto3
from moto import mock_aws

from astromesh.executors.stepfunctions import build_definition
from astromesh.executors.stepfunctions.definition import STEP
from astromesh.local import moto_hooks
from astromesh.local.lambdas import Invocation, LambdaFunction, error_payload, load_handler
from astromesh.local.lambdas import LambdaContext as FakeLambdaContext
from astromesh.workflows.stepfunctions.definition import build_workflow_definition

__all__ = ["FakeLambdaContext", "Invocation", "LocalStepFunctions", "load_handler"]

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/astromesh-step-loop"
ORCHESTRATION_STEP = "astromesh-orchestration-step"
TOOL_EXECUTOR = "astromesh-tool-executor"
WORKFLOW_STEP = "astromesh-workflow-step"
HANDLERS = {
    ORCHESTRATION_STEP: REPO / "functions" / "orchestration_step" / "handler.py",
    TOOL_EXECUTOR: REPO / "functions" / "tool_executor" / "handler.py",
    WORKFLOW_STEP: REPO / "functions" / "workflow_step" / "handler.py",
}
LAMBDA_TIMEOUT_SECONDS = 60


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


class LocalStepFunctions:
    """``mock_aws`` with Step Functions execution, the three machines (the step loop's Express
    and Standard ones, and the workflow machine whose agent steps are child executions of the
    Standard one), and the bound handlers.

    Args:
        definition: keyword arguments for :func:`build_definition` (the Lambda ARNs are
            filled in).
    """

    def __init__(self, **definition: Any) -> None:
        self.definition = build_definition(
            function_arn(ORCHESTRATION_STEP), function_arn(TOOL_EXECUTOR), **definition
        )
        self.containers = {
            name: LambdaFunction(name, path, timeout_seconds=LAMBDA_TIMEOUT_SECONDS)
            for name, path in HANDLERS.items()
        }
        self.invocations: list[Invocation] = []
        self._stack = ExitStack()
        self.client: Any = None
        self.standard_arn = ""
        self.express_arn = ""
        self.workflow_arn = ""

    def __enter__(self) -> Self:
        self._stack.enter_context(
            mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                }
            )
        )
        self._stack.enter_context(moto_hooks.lambda_invocations(self._invoke))
        self._stack.enter_context(moto_hooks.step_functions())
        # StartSyncExecution's "sync-" host prefix is not routed by moto: the clients the
        # code under test creates itself leave it out, as in `astromesh local`.
        self._stack.enter_context(
            mock.patch.dict(os.environ, {"AWS_DISABLE_HOST_PREFIX_INJECTION": "true"})
        )
        self._stack.callback(self._close_containers)
        self.client = boto3.client("stepfunctions", region_name=REGION)
        self.standard_arn = self._create("astromesh-step-loop", "STANDARD")
        self.express_arn = self._create("astromesh-step-loop-express", "EXPRESS")
        workflows = build_workflow_definition(
            function_arn(WORKFLOW_STEP), function_arn(TOOL_EXECUTOR), self.standard_arn
        )
        self.workflow_arn = self._create("astromesh-workflows", "STANDARD", workflows.to_json())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _create(self, name: str, kind: str, definition: str | None = None) -> str:
        created = self.client.create_state_machine(
            name=name,
            definition=definition or self.definition.to_json(),
            roleArn=ROLE_ARN,
            type=kind,
        )
        return created["stateMachineArn"]

    def _close_containers(self) -> None:
        """Close every container's runtime and loop (on the containers' own threads)."""
        for containers in self.containers.values():
            containers.close()

    # -- the Lambda side ----------------------------------------------------------------------

    def _invoke(
        self, name: str, kind: str, payload: bytes, response_headers: dict[str, str]
    ) -> bytes:
        invocation = self.containers[name].invoke(json.loads(payload or b"{}"))
        self.invocations.append(invocation)
        if invocation.exception is None:
            return json.dumps(invocation.answer).encode()
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(error_payload(invocation.exception)).encode()

    # -- executions ---------------------------------------------------------------------------

    def start(self, run_id: str) -> str:
        """Start ``run_id`` (already in the store) on the Standard machine; its ARN."""
        started = self.client.start_execution(
            stateMachineArn=self.standard_arn, name=run_id, input=json.dumps({"run_id": run_id})
        )
        return started["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
        """``DescribeExecution`` once the execution has ended."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.client.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout} s")
            time.sleep(0.01)

    def run(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait(self.start(run_id), timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.client.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]


_PAYLOAD_FIELDS = (("stateEnteredEventDetails", "input"), ("stateExitedEventDetails", "output"))


def state_payloads(history: list[dict[str, Any]]) -> Iterator[tuple[str, str, int]]:
    """``(state, "input" | "output", bytes)`` of every state entered and exited."""
    for event in history:
        for key, kind in (
            ("stateEnteredEventDetails", "input"),
            ("stateExitedEventDetails", "output"),
        ):
            details = event.get(key)
            if details is not None and kind in details:
                yield details["name"], kind, len(details[kind].encode())


def largest_payload_per_iteration(history: list[dict[str, Any]]) -> list[int]:
    """Bytes of the largest state input or output in each iteration of the loop.

    An iteration runs from one ``Step`` to the next (Prepare before the first is left out;
    the last one is the final Step, Decide and Finalize)."""
    largest: list[int] = []
    for event in history:
        entered = event.get("stateEnteredEventDetails")
        if entered is not None and entered["name"] == STEP:
            largest.append(0)
        if largest:
            for key, kind in _PAYLOAD_FIELDS:
                details = event.get(key)
                if details is not None and kind in details:
                    largest[-1] = max(largest[-1], len(details[kind].encode()))
    return largest


def state_transitions(history: list[dict[str, Any]]) -> int:
    """States entered, the unit Step Functions bills Standard workflows by."""
    return sum(1 for event in history if event["type"].endswith("StateEntered"))

"""The step loop's state machine executed by moto, its Lambda tasks bound to ``functions/``.

moto runs Step Functions definitions (its copy of LocalStack's ASL interpreter) when started
with ``execute_state_machine``; a Lambda task then goes to ``LambdaSimpleBackend.invoke``,
which :class:`LocalStepFunctions` binds to the real ``handler.py`` files. Each function gets
emulated containers: a cold start imports its ``handler.py`` afresh (its own module globals:
runtime, event loop), a container serves one invocation at a time and is reused warm, and
an invocation that finds every container busy starts another one, as Lambda does when a Map
runs tool calls in parallel.

moto 5.2 does not implement ``StartSyncExecution``: :func:`_start_sync_execution` fills it in
(start, wait for the end, answer in the API's shape) and :attr:`LocalStepFunctions.client`
skips the ``sync-`` host prefix moto does not route, so the executor's synchronous path makes
the real boto3 call.

    with LocalStepFunctions() as sfn:        # the env (agents dir, state path) set before
        description = sfn.run(run_id)        # start, wait, describe
        sfn.history(description["executionArn"])
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self
from unittest import mock

import boto3
from botocore.config import Config
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.responses import ActionResult
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution
from moto.stepfunctions.responses import StepFunctionResponse

from astromesh.executors.stepfunctions import build_definition
from astromesh.executors.stepfunctions.definition import STEP

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/astromesh-step-loop"
ORCHESTRATION_STEP = "astromesh-orchestration-step"
TOOL_EXECUTOR = "astromesh-tool-executor"
HANDLERS = {
    ORCHESTRATION_STEP: REPO / "functions" / "orchestration_step" / "handler.py",
    TOOL_EXECUTOR: REPO / "functions" / "tool_executor" / "handler.py",
}
LAMBDA_TIMEOUT_SECONDS = 60


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object that the handlers and Powertools read."""

    function_name: str
    timeout_seconds: float = LAMBDA_TIMEOUT_SECONDS
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name)

    @property
    def function_version(self) -> str:
        return "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


def load_handler(path: Path, module_name: str) -> ModuleType:
    """Import ``path`` as a fresh module: one emulated container's cold start."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Invocation:
    """One Lambda invocation as the state machine made it."""

    function: str
    event: dict[str, Any]
    answer: Any
    error: str | None
    cold: bool
    seconds: float
    """Time spent in the handler (import included on a cold start)."""


class FunctionContainers:
    """Emulated containers of one function: fresh import on a cold start, reuse when warm."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._idle: list[ModuleType] = []
        self._all: list[ModuleType] = []
        self._lock = threading.Lock()

    @property
    def cold_starts(self) -> int:
        return len(self._all)

    def _acquire(self) -> tuple[ModuleType, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), False
        module = load_handler(self.path, f"lambda_{self.name.replace('-', '_')}_{uuid.uuid4().hex}")
        with self._lock:
            self._all.append(module)
        return module, True

    def invoke(self, event: dict[str, Any]) -> tuple[Any, BaseException | None, bool]:
        """Call the handler in a free container; return (answer, exception, cold start)."""
        module, cold = self._acquire()
        try:
            return module.handler(event, FakeLambdaContext(self.name)), None, cold
        except Exception as exc:  # noqa: BLE001 - Lambda reports any exception as a function error
            return None, exc, cold
        finally:
            with self._lock:
                self._idle.append(module)

    def close(self) -> None:
        for module in self._all:
            module.worker.close()
        self._all.clear()
        self._idle.clear()


class LocalStepFunctions:
    """moto with Step Functions execution, the step loop's machines and bound handlers.

    Args:
        definition: keyword arguments for :func:`build_definition` (the Lambda ARNs are
            filled in).
    """

    def __init__(self, **definition: Any) -> None:
        self.definition = build_definition(
            function_arn(ORCHESTRATION_STEP), function_arn(TOOL_EXECUTOR), **definition
        )
        self.containers = {name: FunctionContainers(name, path) for name, path in HANDLERS.items()}
        self.invocations: list[Invocation] = []
        self._stack = ExitStack()
        self.client: Any = None
        self.standard_arn = ""
        self.express_arn = ""

    def __enter__(self) -> Self:
        self._stack.enter_context(
            mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                }
            )
        )

        def invoke(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: dict[str, str],
        ) -> bytes:
            return self._invoke(function_name, body, response_headers)

        self._stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke))
        self._stack.enter_context(
            mock.patch.object(
                StepFunctionResponse,
                "start_sync_execution",
                _start_sync_execution,
                create=True,
            )
        )
        for module in (json_path, result_path):
            # moto builds a new JSONPath parser (ply LALR tables) for every path it evaluates,
            # most of a state's cost; parsed paths are immutable, so one parse per path.
            self._stack.enter_context(
                mock.patch.object(module, "parse", functools.lru_cache(maxsize=None)(module.parse))
            )
        # ...and a new boto3 Lambda client for every task (~50 ms each): one is enough.
        clients: dict[tuple[str, str], Any] = {}

        def lambda_client(region: str, service: str, state_credentials: Any = None) -> Any:
            if (region, service) not in clients:
                clients[region, service] = create_client(region, service, state_credentials)
            return clients[region, service]

        create_client = lambda_eval_utils.boto_client_for
        self._stack.enter_context(
            mock.patch.object(lambda_eval_utils, "boto_client_for", lambda_client)
        )
        # Each start deep-copies the state machine, past executions included, and a finished
        # execution holds locks: the second execution of a machine would fail to start.
        self._stack.enter_context(
            mock.patch.object(
                ParserExecution, "__deepcopy__", lambda execution, memo: execution, create=True
            )
        )
        self._stack.callback(self._close_containers)
        # StartSyncExecution goes to the "sync-states" host, which moto does not route;
        # without the host prefix it reaches moto's Step Functions like every other call.
        self.client = boto3.client(
            "stepfunctions", region_name=REGION, config=Config(inject_host_prefix=False)
        )
        # The same for the clients the code under test creates itself (the api function's
        # launcher starts synchronous runs with its own client).
        real_client = boto3.client

        def unprefixed_client(service_name: str, *args: Any, **kwargs: Any) -> Any:
            if service_name == "stepfunctions":
                config = Config(inject_host_prefix=False)
                kwargs["config"] = (
                    kwargs["config"].merge(config) if kwargs.get("config") else config
                )
            return real_client(service_name, *args, **kwargs)

        self._stack.enter_context(mock.patch.object(boto3, "client", unprefixed_client))
        self.standard_arn = self._create("astromesh-step-loop", "STANDARD")
        self.express_arn = self._create("astromesh-step-loop-express", "EXPRESS")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _create(self, name: str, kind: str) -> str:
        created = self.client.create_state_machine(
            name=name, definition=self.definition.to_json(), roleArn=ROLE_ARN, type=kind
        )
        return created["stateMachineArn"]

    def _close_containers(self) -> None:
        """Close every container's runtime and loop; in a thread of its own, because the
        harness may be left from inside a test's running event loop."""
        closer = threading.Thread(
            target=lambda: [containers.close() for containers in self.containers.values()]
        )
        closer.start()
        closer.join()

    # -- the Lambda side ----------------------------------------------------------------------

    def _invoke(self, function_name: str, body: Any, response_headers: dict[str, str]) -> bytes:
        name = function_name.rsplit(":", 1)[-1]
        event = json.loads(body or "{}")
        started = time.perf_counter()
        answer, exc, cold = self.containers[name].invoke(event)
        seconds = time.perf_counter() - started
        error = None if exc is None else type(exc).__name__
        self.invocations.append(Invocation(name, event, answer, error, cold, seconds))
        if exc is None:
            return json.dumps(answer).encode()
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc),
            }
        ).encode()

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


def _start_sync_execution(self: StepFunctionResponse) -> ActionResult:
    """``StartSyncExecution`` for moto: start the execution, wait for it, describe it."""
    backend = self.stepfunction_backend
    execution = backend.start_execution(
        self._get_param("stateMachineArn"),
        self._get_param("name") or uuid.uuid4().hex,
        self._get_param("input", if_none="{}"),
    )
    arn = execution.execution_arn
    while (described := backend.describe_execution(arn)).status == "RUNNING":
        time.sleep(0.01)
    answer: dict[str, Any] = {
        "executionArn": arn,
        "stateMachineArn": described.state_machine_arn,
        "name": described.name,
        "startDate": described.start_date,
        "stopDate": described.stop_date,
        "status": described.status,
        "input": described.execution_input,
    }
    if described.output is not None:
        output = described.output
        answer["output"] = output if isinstance(output, str) else json.dumps(output)
    for key in ("error", "cause"):
        if getattr(described, key, None) is not None:
            answer[key] = getattr(described, key)
    return ActionResult(answer)

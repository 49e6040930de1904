"""Where moto hands work to the emulation, and what it lacks for the step loop.

moto records a Lambda invocation, an S3 notification or a ``post_to_connection`` without
running anything; these context managers patch the few moto methods where that happens so
the caller decides (run the real handler, record the event, write to a real socket):

- :func:`lambda_invocations`: ``Invoke`` (any invocation type, and a state machine's Lambda
  tasks, which moto's Step Functions interpreter makes through the same API);
- :func:`s3_notifications`: the Lambda destinations of a bucket's notification;
- :func:`websocket_connections`: the API Gateway Management API's connections;
- :func:`step_functions`: ``StartSyncExecution`` (moto 5.2 has none), the Step Functions
  service integration (``states:startExecution``, ``.sync``, ``.sync:2``) whose request and
  answer moto 5.2 leaves in the ASL's casing (``StateMachineArn``), so botocore refuses it
  and the task fails with ``States.Runtime``: here they are translated as AWS (and
  LocalStack, which moto's interpreter is copied from) does; ``SendTaskFailure``'s
  ``cause``, which moto's API layer drops (a caught error's ``Cause`` would be null); and
  three costs of moto's
  interpreter removed (a JSONPath parser built per path, a boto3 client per task, a deep copy
  of the machine with all its past executions per start, which also fails once a finished
  execution holds its locks).

They patch classes, so they apply to moto in this process whether it runs as ``mock_aws``
(tests) or as a server (:mod:`astromesh.local.emulation`).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock
from urllib.parse import unquote

import boto3
import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.model import OperationModel
from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.s3 import notifications as s3_notifications_module
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_sfn,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (  # noqa: E501
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.utils import json_path
from moto.stepfunctions.parser.backend.execution import Execution as ParserExecution
from moto.stepfunctions.responses import StepFunctionResponse

InvokeHandler = Callable[[str, str, bytes, dict[str, str]], bytes]
"""(function name, invocation type, payload, response headers to fill) -> response payload."""
NotificationHandler = Callable[[str, dict[str, Any]], None]
"""(function name, S3 event) -> None; S3 invokes its destinations asynchronously."""
PostHandler = Callable[[str, bytes], None]
"""(connection id, data) -> None; raise :class:`GoneException` for a connection gone."""
DeleteHandler = Callable[[str], None]


class GoneException(JsonRESTError):
    """The Management API's 410 for a connection that no longer exists."""

    code = 410

    def __init__(self, connection_id: str) -> None:
        super().__init__("GoneException", f"connection {connection_id} is gone")


@contextmanager
def lambda_invocations(handler: InvokeHandler) -> Iterator[None]:
    """Every ``Invoke`` goes to ``handler``, whatever the function's code in moto."""

    def invoke(
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        kind = headers.get("X-Amz-Invocation-Type", "RequestResponse") if headers else ""
        payload = body if isinstance(body, bytes) else (body or "").encode()
        return handler(
            function_name.rsplit(":", 1)[-1], kind or "RequestResponse", payload, response_headers
        )

    with mock.patch.object(LambdaSimpleBackend, "invoke", invoke):
        yield


@contextmanager
def s3_notifications(handler: NotificationHandler) -> Iterator[None]:
    """A bucket's Lambda notifications go to ``handler`` (moto would run them in Docker)."""

    def deliver(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        handler(fn_arn.rsplit(":", 1)[-1], event_body)

    with mock.patch.object(s3_notifications_module, "_invoke_awslambda", deliver):
        yield


@contextmanager
def websocket_connections(post: PostHandler, delete: DeleteHandler | None = None) -> Iterator[None]:
    """``post_to_connection`` (and ``delete_connection``) go to the given callables."""

    def post_to_connection(
        backend: ApiGatewayManagementApiBackend, data: bytes, connection_id: str
    ) -> None:
        post(unquote(connection_id), data)  # moto keeps the id as it appears in the URL

    def delete_connection(backend: ApiGatewayManagementApiBackend, connection_id: str) -> None:
        if delete is not None:
            delete(unquote(connection_id))

    with ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(
                ApiGatewayManagementApiBackend, "post_to_connection", post_to_connection
            )
        )
        if delete is not None:
            stack.enter_context(
                mock.patch.object(
                    ApiGatewayManagementApiBackend, "delete_connection", delete_connection
                )
            )
        yield


@contextmanager
def step_functions(endpoint_url: str | None = None) -> Iterator[None]:
    """``StartSyncExecution`` and the interpreter's fixes (see the module doc).

    Args:
        endpoint_url: where the interpreter's tasks call Lambda's ``Invoke`` and Step
            Functions' ``StartExecution`` / ``DescribeExecution`` (moto's server); None
            within ``mock_aws``, which intercepts the calls.
    """
    with ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(
                StepFunctionResponse, "start_sync_execution", _start_sync_execution, create=True
            )
        )
        for module in (json_path, result_path):
            # Parsed paths are immutable: one parse per distinct path.
            stack.enter_context(
                mock.patch.object(module, "parse", functools.lru_cache(maxsize=None)(module.parse))
            )
        clients: dict[tuple[str, str], Any] = {}
        create_client = lambda_eval_utils.boto_client_for

        def task_client(region: str, service: str, state_credentials: Any = None) -> Any:
            if (region, service) not in clients:
                if endpoint_url is None:
                    clients[region, service] = create_client(region, service, state_credentials)
                else:
                    clients[region, service] = boto3.client(
                        service,
                        region_name=region,
                        endpoint_url=endpoint_url,
                        aws_access_key_id="ak",
                        aws_secret_access_key="sk",
                        config=Config(
                            parameter_validation=False,
                            retries={"max_attempts": 0, "total_max_attempts": 1},
                            connect_timeout=60,
                            read_timeout=900,
                        ),
                    )
            return clients[region, service]

        # Lambda tasks and the Step Functions integration (.sync child executions) alike
        for module in (lambda_eval_utils, state_task_service_sfn):
            stack.enter_context(mock.patch.object(module, "boto_client_for", task_client))
        stack.enter_context(
            mock.patch.object(StepFunctionResponse, "send_task_failure", _send_task_failure)
        )
        stack.enter_context(
            mock.patch.object(StateTaskServiceSfn, "_normalise_parameters", _sfn_request)
        )
        stack.enter_context(
            mock.patch.object(StateTaskServiceSfn, "_normalise_response", _sfn_response)
        )
        stack.enter_context(
            mock.patch.object(
                ParserExecution, "__deepcopy__", lambda execution, memo: execution, create=True
            )
        )
        yield


_sfn_request_as_asl = StateTaskServiceSfn._normalise_parameters


@functools.cache
def _operation(service: str, action: str) -> OperationModel:
    """botocore's model of ``action`` (``start_execution``) of ``service``."""
    model = botocore.session.get_session().get_service_model(service)
    for name in model.operation_names:
        if xform_name(name) == action:
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {action}")


def _sfn_request(
    task: StateTaskServiceSfn,
    parameters: dict[str, Any],
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """The task's ``Parameters`` (``StateMachineArn``, ``Input``) as botocore names them."""
    _sfn_request_as_asl(task, parameters, boto_service_name, service_action_name)
    service = task._get_boto_service_name(boto_service_name)
    action = task._get_boto_service_action(service_action_name)
    task._to_boto_request(parameters, _operation(service, action).input_shape)


def _sfn_response(
    task: StateTaskServiceSfn,
    response: Any,
    boto_service_name: str | None = None,
    service_action_name: str | None = None,
) -> None:
    """The API's answer in the ASL's casing (``ExecutionArn``, ``Status``, ``Output``)."""
    service = task._get_boto_service_name(boto_service_name)
    action = task._get_boto_service_action(service_action_name)
    task._from_boto_response(response, _operation(service, action).output_shape)


def _send_task_failure(self: StepFunctionResponse) -> ActionResult:
    """``SendTaskFailure`` with its ``cause`` (moto's own passes the error only)."""
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return ActionResult({})


def _start_sync_execution(self: StepFunctionResponse) -> ActionResult:
    """``StartSyncExecution``: start the execution, wait for its end, answer in the API's
    shape (``output`` or ``error`` / ``cause``)."""
    backend = self.stepfunction_backend
    execution = backend.start_execution(
        self._get_param("stateMachineArn"),
        self._get_param("name") or uuid.uuid4().hex,
        self._get_param("input", if_none="{}"),
    )
    arn = execution.execution_arn
    while (described := backend.describe_execution(arn)).status == "RUNNING":
        time.sleep(0.005)
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

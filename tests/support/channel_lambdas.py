"""The channel functions on emulated AWS: moto records self-invocations and pushed frames.

:class:`ChannelAWS` starts ``mock_aws`` and binds moto's ``LambdaSimpleBackend.invoke`` to a
recorder, so a handler's asynchronous self-invocation (``InvocationType=Event``) is kept as
a job event the test then hands back to the handler, as Lambda would. Frames pushed with
``post_to_connection`` are read back from moto's Management API backend, where every call
appends its bytes to the connection's data: :meth:`ChannelAWS.frames` splits them into JSON
frames again and :attr:`ChannelAWS.posts` counts the calls.

    with ChannelAWS() as aws:
        response = handler(event, context)
        [job] = aws.take_jobs()
        handler(job, context)
        aws.frames("L0SM9cOFvHcCIhw=")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from unittest import mock
from urllib.parse import quote, unquote

from moto import mock_aws
from moto.apigatewaymanagementapi.models import (
    ApiGatewayManagementApiBackend,
    apigatewaymanagementapi_backends,
)
from moto.awslambda_simple.models import LambdaSimpleBackend

from astromesh.channels.aws import invoke, management

ACCOUNT = "123456789012"
REGION = "eu-west-1"
"""The sample events' API is in eu-west-1."""


@dataclass
class Invoked:
    function: str
    invocation_type: str
    event: dict[str, Any]


class ChannelAWS:
    """moto for the channel functions (see the module doc)."""

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.invocations: list[Invoked] = []
        self.posts: dict[str, int] = {}
        """post_to_connection calls per connection id."""
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        recorder = self

        def record_invoke(
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            with recorder._lock:
                recorder.invocations.append(
                    Invoked(
                        function_name,
                        headers.get("X-Amz-Invocation-Type", "RequestResponse"),
                        json.loads(body),
                    )
                )
            return b""

        original_post = ApiGatewayManagementApiBackend.post_to_connection

        def count_post(
            backend: ApiGatewayManagementApiBackend, data: bytes, connection_id: str
        ) -> None:
            with recorder._lock:
                key = unquote(connection_id)  # moto keeps the id as it appears in the URL
                recorder.posts[key] = recorder.posts.get(key, 0) + 1
            original_post(backend, data, connection_id)

        self._stack.enter_context(mock_aws(config={"lambda": {"use_docker": False}}))
        self._stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", record_invoke))
        self._stack.enter_context(
            mock.patch.object(ApiGatewayManagementApiBackend, "post_to_connection", count_post)
        )
        self._stack.callback(invoke._clients.clear)
        self._stack.callback(management._clients.clear)
        invoke._clients.clear()  # clients made outside this mock would reach real AWS
        management._clients.clear()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def take_jobs(self) -> list[dict[str, Any]]:
        """The self-invocations' events since the last call (all must be asynchronous)."""
        with self._lock:
            taken, self.invocations = self.invocations, []
        assert {i.invocation_type for i in taken} <= {"Event"}, taken
        return [i.event for i in taken]

    def _backend(self) -> ApiGatewayManagementApiBackend:
        return apigatewaymanagementapi_backends[ACCOUNT][self.region]

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        """Every frame posted to the connection, in order (moto concatenates the bodies)."""
        return list(_json_values(self.data(connection_id).decode()))

    def data(self, connection_id: str) -> bytes:
        """The bytes moto recorded for the connection (its id URL-encoded, as in the path)."""
        connections = self._backend().connections
        for key in (quote(connection_id, safe=""), connection_id):
            if key in connections:
                return connections[key].data
        return b""


def _json_values(text: str) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        yield value

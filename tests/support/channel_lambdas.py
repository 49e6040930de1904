"""The channel functions on emulated AWS: self-invocations and pushed frames recorded.

:class:`ChannelAWS` starts ``mock_aws`` and takes the two hand-offs of a channel function
through the product's moto hooks (:mod:`astromesh.local.moto_hooks`): an asynchronous
self-invocation (``InvocationType=Event``) is kept as a job event the test then hands back to
the handler, as Lambda would, and every ``post_to_connection`` is recorded per connection:
:meth:`ChannelAWS.frames` splits the bytes into JSON frames again and :attr:`ChannelAWS.posts`
counts the calls. (``astromesh local`` runs the jobs and writes the frames to real sockets
through the same hooks.)

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

from moto import mock_aws

from astromesh.channels.aws import invoke, management
from astromesh.local import moto_hooks

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
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        self._stack.enter_context(mock_aws(config={"lambda": {"use_docker": False}}))
        self._stack.enter_context(moto_hooks.lambda_invocations(self._record_invoke))
        self._stack.enter_context(moto_hooks.websocket_connections(self._record_post))
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

    def _record_invoke(
        self, name: str, kind: str, payload: bytes, response_headers: dict[str, str]
    ) -> bytes:
        with self._lock:
            self.invocations.append(Invoked(name, kind, json.loads(payload)))
        return b""

    def _record_post(self, connection_id: str, data: bytes) -> None:
        with self._lock:
            self.posts[connection_id] = self.posts.get(connection_id, 0) + 1
            self._data[connection_id] = self._data.get(connection_id, b"") + data

    def take_jobs(self) -> list[dict[str, Any]]:
        """The self-invocations' events since the last call (all must be asynchronous)."""
        with self._lock:
            taken, self.invocations = self.invocations, []
        assert {i.invocation_type for i in taken} <= {"Event"}, taken
        return [i.event for i in taken]

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        """Every frame posted to the connection, in order."""
        return list(_json_values(self.data(connection_id).decode()))

    def data(self, connection_id: str) -> bytes:
        """The bytes posted to the connection, concatenated."""
        with self._lock:
            return self._data.get(connection_id, b"")


def _json_values(text: str) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        yield value

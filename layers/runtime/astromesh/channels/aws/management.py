"""Posting to a WebSocket client through the API Gateway Management API (boto3).

The endpoint is ``ASTROMESH_WS_CALLBACK_URL`` when set (the infra sets it; needed when a
custom domain maps the stage elsewhere), else the API's ``https://{domain}/{stage}`` from
the event's request context. One client per endpoint is kept for the container's life.
Calls run in a worker thread (boto3 is blocking), are retried briefly when throttled, and a
410 ``GoneException`` becomes :class:`~astromesh.channels.aws.frames.ConnectionGone`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from astromesh.channels.aws.frames import ConnectionGone, DeliveryFailed

ENDPOINT_ENV = "ASTROMESH_WS_CALLBACK_URL"
_RETRYABLE = frozenset(
    {"LimitExceededException", "ThrottlingException", "TooManyRequestsException"}
)
_ATTEMPTS = 3
_clients: dict[str, Any] = {}


def endpoint_of(request_context: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """The Management API endpoint for the connection of ``request_context``."""
    env = os.environ if env is None else env
    configured = env.get(ENDPOINT_ENV)
    if configured:
        return configured.rstrip("/")
    return f"https://{request_context['domainName']}/{request_context['stage']}"


def management_client(endpoint: str) -> Any:
    """The container's ``apigatewaymanagementapi`` client for ``endpoint``."""
    if endpoint not in _clients:
        import boto3

        _clients[endpoint] = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
    return _clients[endpoint]


class ConnectionPoster:
    """``post(data)`` for one connection; see :data:`~astromesh.channels.aws.frames.Post`."""

    def __init__(self, client: Any, connection_id: str) -> None:
        self.client = client
        self.connection_id = connection_id

    async def __call__(self, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(_ATTEMPTS):
            try:
                await asyncio.to_thread(
                    self.client.post_to_connection, ConnectionId=self.connection_id, Data=data
                )
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "GoneException" or status == 410:
                    raise ConnectionGone(self.connection_id) from None
                retryable = code in _RETRYABLE or status in (429, 500, 502, 503)
                if not retryable or attempt == _ATTEMPTS - 1:
                    raise DeliveryFailed(f"{code or status}: {exc}") from None
            except BotoCoreError as exc:
                if attempt == _ATTEMPTS - 1:
                    raise DeliveryFailed(str(exc)) from None
            await asyncio.sleep(0.05 * 2**attempt)

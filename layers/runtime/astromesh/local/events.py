"""API Gateway's Lambda proxy events and responses, as the front builds and reads them.

REST (payload format 1.0, what ``apigateway.LambdaIntegration(proxy=True)`` sends) and the
WebSocket API's ``CONNECT`` / ``MESSAGE`` / ``DISCONNECT`` events carry the fields the
handlers (Mangum, Powertools' data classes, the webhooks) read, in the shapes of the samples
in ``events/``.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

API_ID = "local"


@dataclass(frozen=True, slots=True)
class Request:
    """What the front received, before API Gateway's translation."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    host: str


def _headers(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _query(query: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        return None, None
    return _headers(pairs)


def _now() -> tuple[int, str]:
    moment = datetime.now(UTC)
    return int(moment.timestamp() * 1000), moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def rest_event(request: Request, resource: str, stage: str, account: str) -> dict[str, Any]:
    """The REST API's proxy event for ``request`` matched to ``resource``."""
    headers, multi_headers = _headers(request.headers)
    query, multi_query = _query(request.query)
    epoch, when = _now()
    try:
        body: str | None = request.body.decode("utf-8") if request.body else None
        encoded = False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(request.body).decode(), True
    path_parameters = None
    if resource.endswith("{proxy+}"):
        prefix = resource[: -len("{proxy+}")]
        path_parameters = {"proxy": request.path[len(prefix) :]}
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": account,
            "apiId": API_ID,
            "resourcePath": resource,
            "httpMethod": request.method,
            "path": f"/{stage}{request.path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": when,
            "requestTimeEpoch": epoch,
            "domainName": request.host,
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", headers.get("User-Agent")),
            },
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def new_connection_id() -> str:
    """Shaped like API Gateway's (``L0SM9cOFvHcCIhw=``): base64 of 11 random bytes, without
    ``/`` (moto's Management API routes ``/@connections/{id}`` on one path segment)."""
    while "/" in (connection_id := base64.b64encode(os.urandom(11)).decode()):
        pass
    return connection_id


@dataclass
class Connection:
    """One WebSocket client as API Gateway knows it."""

    connection_id: str
    stage: str
    host: str
    source_ip: str
    user_agent: str | None
    connected_at: int

    def context(self, route: str, event_type: str) -> dict[str, Any]:
        epoch, when = _now()
        request_id = base64.b64encode(os.urandom(11)).decode()
        context: dict[str, Any] = {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": when,
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": self.connected_at,
            "requestTimeEpoch": epoch,
            "identity": {"userAgent": self.user_agent, "sourceIp": self.source_ip},
            "requestId": request_id,
            "domainName": self.host,
            "connectionId": self.connection_id,
            "apiId": API_ID,
        }
        if event_type == "MESSAGE":
            context["messageId"] = base64.b64encode(os.urandom(11)).decode()
        return context


def connect_event(
    connection: Connection, headers: list[tuple[str, str]], query: str
) -> dict[str, Any]:
    single, multi = _headers(headers)
    params, multi_params = _query(query)
    return {
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": params,
        "multiValueQueryStringParameters": multi_params,
        "requestContext": connection.context("$connect", "CONNECT"),
        "isBase64Encoded": False,
    }


def message_event(connection: Connection, route: str, body: str) -> dict[str, Any]:
    return {
        "requestContext": connection.context(route, "MESSAGE"),
        "body": body,
        "isBase64Encoded": False,
    }


def disconnect_event(connection: Connection, code: int, reason: str) -> dict[str, Any]:
    context = connection.context("$disconnect", "DISCONNECT")
    context.update({"disconnectStatusCode": code, "disconnectReason": reason})
    return {
        "headers": {"Host": connection.host},
        "multiValueHeaders": {"Host": [connection.host]},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def connected_at() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class ProxyResponse:
    """A proxy integration's answer, checked as API Gateway checks it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


BAD_GATEWAY = ProxyResponse(
    502, [("content-type", "application/json")], b'{"message": "Internal server error"}'
)


def proxy_response(answer: Any) -> ProxyResponse:
    """``{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`` -> HTTP; anything
    else is API Gateway's 502 (a malformed Lambda proxy response)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("statusCode"), int):
        return BAD_GATEWAY
    headers: list[tuple[str, str]] = []
    multi = answer.get("multiValueHeaders") or {}
    for name, values in multi.items():
        headers.extend((name.lower(), str(value)) for value in values)
    for name, value in (answer.get("headers") or {}).items():
        if name not in multi:
            headers.append((name.lower(), str(value)))
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    return ProxyResponse(answer["statusCode"], headers, raw)

"""API Gateway proxy events in, proxy responses out, for the handlers that skip Mangum.

The webhook functions need the *raw* body (the platform signed those bytes), so they read the
event themselves: REST (v1) and HTTP API (v2) proxy events both carry ``body`` as a string,
base64-encoded when ``isBase64Encoded`` is true (binary media types, or an HTTP API that
chose to); either way the bytes are recovered exactly.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from astromesh.channels.errors import BadRequest, Unauthorized, error_body
from astromesh.channels.messaging.base import WebhookRequest
from astromesh.errors import AstromeshError


def webhook_request(event: Mapping[str, Any]) -> WebhookRequest:
    """The request of a REST or HTTP API proxy event.

    Raises:
        BadRequest: a base64 body that does not decode.
    """
    method = event.get("httpMethod") or (
        ((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")
    )
    return WebhookRequest(
        method=str(method).upper(),
        headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
        query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        body=raw_body(event),
    )


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The body's bytes as the client sent them."""
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is marked base64 but does not decode") from None
    return str(body).encode("utf-8")


def text_response(status: int, text: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": text,
    }


def json_response(status: int, data: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(data),
    }


def error_response(exc: AstromeshError) -> dict[str, Any]:
    """The ``{"error": {code, message}, "detail"}`` answer the REST API gives for the same
    error."""
    response = json_response(exc.status, error_body(exc.code, exc.message))
    if isinstance(exc, Unauthorized):
        response["headers"]["www-authenticate"] = "Bearer"
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int) and exc.status == 503:
        response["headers"]["retry-after"] = str(retry_after)
    return response

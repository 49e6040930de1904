"""Two pure ASGI middlewares: the request size limit and the last-resort error boundary.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses and WebSockets pass through
untouched and each request costs one function call, not a task.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from astromesh.channels.errors import error_body

logger = logging.getLogger(__name__)


class _BodyTooLarge(Exception):
    """Raised into the app when the body it is reading crosses the limit."""


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body
    without one (chunked) is counted as it arrives and refused once it crosses the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _send_json(send, 413, self._body())
                    return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app answers to a cut-off body, the caller gets the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            # FastAPI may wrap our exception (a body it fails to read becomes a 400): only
            # swallow what the cut-off body caused.
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_json(send, 413, self._body())

    def _body(self) -> dict[str, Any]:
        return error_body(
            "payload_too_large", f"request body is larger than the limit of {self.max_bytes} bytes"
        )


class ErrorBoundary:
    """Turn any exception a route let escape into a 500 JSON body without a stack trace.

    The traceback goes to the log; the caller gets a stable code. Sitting inside Starlette's
    own error middleware, it also keeps that middleware from re-raising into the server (or
    into Mangum, which would turn it into a Lambda error).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            logger.exception("path=<%s> | unhandled error", scope.get("path"))
            if not started:
                await _send_json(
                    send,
                    500,
                    error_body("internal_error", "internal error; the server log has the details"),
                )

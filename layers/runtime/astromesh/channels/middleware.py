"""Pure ASGI middlewares: the request size limit, the text boundary and the last-resort
error boundary.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses and WebSockets pass through
untouched and each request costs one function call, not a task.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from astromesh.channels.errors import error_body
from astromesh.text_boundary import (
    TextIssue,
    json_body_issues,
    path_issues,
    query_issues,
    summarize,
)

logger = logging.getLogger(__name__)


class _BodyTooLarge(Exception):
    """Raised into the app when the body it is reading crosses the limit."""


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()  # ASCII: never fails, whatever the message holds
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


class TextBoundary:
    """Refuse a request whose path, query string or JSON body holds invalid text (see
    :mod:`astromesh.text_boundary`) with ``422 invalid_text``, naming each field.

    Checked once here, before routing or authentication (like a body that is not JSON), so
    no route, store or log ever sees such text from the API. JSON bodies are read in full
    (``BodyLimit``, outside this, bounds them) and replayed to the app unchanged. Webhook
    deliveries (``/v1/channels/``) are not refused: the platform cannot be told, so their
    adapters repair the text instead. WebSocket messages are checked by the socket's
    handler, one message at a time.
    """

    REPAIRED_PREFIXES = ("/v1/channels/",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
        issues = path_issues(raw_path) + query_issues(scope.get("query_string", b""))
        if issues:
            await _refuse_text(send, issues)
            return
        if not self._has_json_body(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        issues = json_body_issues(body)
        if issues:
            await _refuse_text(send, issues)
            return
        await self.app(scope, _replay([body], None, receive), send)

    def _has_json_body(self, scope: Scope) -> bool:
        if scope.get("method") not in ("POST", "PUT", "PATCH", "DELETE"):
            return False
        if str(scope.get("path", "")).startswith(self.REPAIRED_PREFIXES):
            return False
        content_type = next(
            (value for name, value in scope.get("headers", []) if name == b"content-type"), b""
        )
        media = content_type.split(b";")[0].strip().lower()
        # No Content-Type is read as JSON too (the app's lenient parsing, for upstream clients).
        return media in (b"", b"application/json") or media.endswith(b"+json")


def _replay(chunks: list[bytes], first: Message | None, receive: Receive) -> Receive:
    """A ``receive`` giving back what was already read, then the client's own."""
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": False} for chunk in chunks
    ]
    if first is not None:
        pending.append(first)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _refuse_text(send: Send, issues: list[TextIssue]) -> None:
    body = error_body(
        "invalid_text", summarize(issues), fields=[issue.to_dict() for issue in issues]
    )
    await _send_json(send, 422, body)


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

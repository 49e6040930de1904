"""A request's W3C ``traceparent``: runs it starts join the caller's trace.

The run's trace context is fixed when the run is screened, under the span current then
(:func:`astromesh.telemetry.scope.begin_trace`); this middleware makes the caller's span
current for the request, so the run's root span is a child of it and every span of the run,
in whichever Lambda, carries the caller's trace id. A malformed header is ignored, as the W3C
recommendation says (a new trace starts), never an error. Parsed here with one regex: the
OpenTelemetry propagators are not worth importing for one header. Pure ASGI, like the other
middlewares.
"""

from __future__ import annotations

import re

from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value: str) -> trace.SpanContext | None:
    """The remote span a ``traceparent`` names, or ``None`` when it is not a valid one."""
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or value.startswith("ff"):
        return None
    trace_id, span_id, flags = int(match[1], 16), int(match[2], 16), int(match[3], 16)
    if not trace_id or not span_id:
        return None
    return trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags & 1)
    )


class TraceParent:
    """Make the request's ``traceparent`` span current while the request is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = (
            next((v for k, v in scope.get("headers", ()) if k == b"traceparent"), None)
            if scope["type"] in ("http", "websocket")
            else None
        )
        remote = parse_traceparent(header.decode("latin-1")) if header else None
        if remote is None:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote)))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)

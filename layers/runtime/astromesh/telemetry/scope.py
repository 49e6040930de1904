"""Which run a process is working on, for the spans it records.

Free of the OpenTelemetry SDK (only the API's context is used), so importing it costs nothing
at a handler's cold start. Every unit of work on a run (the local loop, each Step Functions
task, a tool executor) runs inside :func:`run_scope`: spans started there continue the run's
trace (children of its root span, whose ids were fixed when the run was created by
:func:`begin_trace`), are held for the run, and :func:`keep_spans` moves them into the run
document before it is saved. The root ``invoke_agent`` span itself is recorded when the run
ends (:func:`astromesh.telemetry.genai.end_run`), spanning from its creation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace

from astromesh.runs.trace import RunTrace
from astromesh.telemetry.content import Capture, capture_for

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.runs.state import RunState

_run_id: ContextVar[str | None] = ContextVar("astromesh_trace_run", default=None)
_capture: ContextVar[Capture | None] = ContextVar("astromesh_trace_capture", default=None)


def current_run_id() -> str | None:
    """The run whose spans are being recorded here, if any."""
    return _run_id.get()


def current_capture() -> Capture | None:
    """How content goes on this run's spans, or ``None`` when it stays off."""
    return _capture.get()


def begin_trace(run: RunState) -> RunTrace:
    """Fix the run's trace context (once): under the span current here if there is one (the
    request's ``traceparent``, the parent run's ``execute_tool``), else a new trace whose id
    is the run id's hex, so ``GET /v1/traces/{id}`` finds the run without an index."""
    if run.trace is None:
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            trace_id, parent = f"{current.trace_id:032x}", f"{current.span_id:016x}"
        else:
            trace_id, parent = trace_id_of(run.id), None
        run.trace = RunTrace(trace_id=trace_id, span_id=os.urandom(8).hex(), parent_span_id=parent)
    return run.trace


def trace_id_of(run_id: str) -> str:
    """The trace id a run started without a caller's trace gets: its id's 32 hex digits."""
    digits = run_id.removeprefix("run_")
    if len(digits) == 32 and all(c in "0123456789abcdef" for c in digits) and int(digits, 16):
        return digits
    return os.urandom(16).hex()


@contextmanager
def run_scope(run: RunState, agent: Agent | None = None) -> Iterator[RunTrace]:
    """Record spans for ``run`` in the block, as children of its root span."""
    context = begin_trace(run)
    parent = trace.NonRecordingSpan(
        trace.SpanContext(
            int(context.trace_id, 16),
            int(context.span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    capture = capture_for(agent.guardrails, agent.capture_content) if agent is not None else None
    outermost = _run_id.get() != run.id
    run_token = _run_id.set(run.id)
    capture_token = _capture.set(capture)
    attached = otel_context.attach(trace.set_span_in_context(parent))
    try:
        yield context
    finally:
        otel_context.detach(attached)
        _capture.reset(capture_token)
        _run_id.reset(run_token)
        if outermost:
            take_spans(run.id)  # not kept by now (a retried task saved nothing): dropped


def keep_spans(run: RunState) -> None:
    """Move the spans recorded for ``run`` in this process into its document (bounded)."""
    from astromesh.telemetry.provider import built

    tracing = built()
    if tracing is None:
        return
    spans = tracing.buffer.take(run.id)
    if spans:
        begin_trace(run).keep(spans)


def take_spans(run_id: str) -> list[dict[str, object]]:
    """The spans recorded for ``run_id`` in this process, handed to the caller (a tool
    executor puts them in the call's result, which the run's ``observe`` keeps)."""
    from astromesh.telemetry.provider import built

    tracing = built()
    return tracing.buffer.take(run_id) if tracing is not None else []

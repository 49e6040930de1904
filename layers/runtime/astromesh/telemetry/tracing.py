"""Spans for pipeline stages and the runtime's other internal operations.

Recorded on the runtime's own provider (:mod:`astromesh.telemetry.provider`, built with the
first span), so they are kept with the run that was being worked on and exported when OTLP is
configured. The GenAI spans (model calls, tool calls, the agent run) are in
:mod:`astromesh.telemetry.genai`.

A ReAct iteration opens five of these (step, chat, act, execute_tool, observe), so they are
plain classes rather than ``@contextmanager`` generators: one object per span, its attributes
given to the SDK when the span starts (one cleaning pass) instead of one ``set_attribute``
each, and the span made current with ``attach``/``detach`` directly rather than through the
SDK's two nested generator context managers (``start_as_current_span``, ``use_span``).
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from astromesh.telemetry.provider import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

logger = logging.getLogger("astromesh.pipeline")


class operation:  # a class (not @contextmanager): one object per span, see the module doc
    """A span named ``name`` around the block, current inside it (its children nest under
    it); an exception leaving the block marks it failed with ``error.type``. ``None``
    attribute values are left out."""

    __slots__ = ("_attributes", "_name", "_span", "_token")

    def __init__(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        self._name = name
        self._attributes = (
            {k: v for k, v in attributes.items() if v is not None} if attributes else None
        )

    def __enter__(self) -> Span:
        span = tracing().tracer.start_span(
            self._name,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            # A consumer that stopped reading (GeneratorExit) is not a failure.
            if exc is not None and not isinstance(exc, GeneratorExit):
                fail(span, type(exc).__name__, str(exc))
        finally:
            otel_context.detach(self._token)
            span.end()


class stage(operation):
    """Trace one named stage (``astromesh.prepare``, ``astromesh.step``...) and log its time.

    Keyword attributes become ``astromesh.<key>`` (``None`` values are left out).
    """

    __slots__ = ("_run_id", "_started")

    def __init__(self, name: str, **attributes: Any) -> None:
        self._name = f"astromesh.{name}"
        self._attributes = {f"astromesh.{k}": v for k, v in attributes.items() if v is not None}
        self._run_id = attributes.get("run_id")
        self._started = 0.0

    def __enter__(self) -> Span:
        self._started = time.perf_counter()
        return super().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            super().__exit__(exc_type, exc, traceback)
        finally:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "stage=<%s> run_id=<%s> | %.2f ms",
                    self._name.removeprefix("astromesh."),
                    self._run_id,
                    (time.perf_counter() - self._started) * 1000.0,
                )


def fail(span: Span, error_type: str, message: str = "") -> None:
    """Mark ``span`` failed the conventions' way: ``error.type`` and an error status."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message[:500] or None))

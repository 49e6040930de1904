"""Spans for pipeline stages and the runtime's other internal operations.

Recorded on the runtime's own provider (:mod:`astromesh.telemetry.provider`, built with the
first span), so they are kept with the run that was being worked on and exported when OTLP is
configured. The GenAI spans (model calls, tool calls, the agent run) are in
:mod:`astromesh.telemetry.genai`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from astromesh.telemetry.provider import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

logger = logging.getLogger("astromesh.pipeline")


@contextmanager
def stage(name: str, **attributes: Any) -> Iterator[Span]:
    """Trace one named stage (``astromesh.prepare``, ``astromesh.step``...) and log its time.

    Keyword attributes become ``astromesh.<key>`` (``None`` values are left out).
    """
    started = time.perf_counter()
    with operation(
        f"astromesh.{name}", {f"astromesh.{k}": v for k, v in attributes.items()}
    ) as span:
        try:
            yield span
        finally:
            logger.debug(
                "stage=<%s> run_id=<%s> | %.2f ms",
                name,
                attributes.get("run_id"),
                (time.perf_counter() - started) * 1000.0,
            )


@contextmanager
def operation(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Span]:
    """A span named ``name`` around the block, current inside it (its children nest under
    it); an exception leaving the block marks it failed with ``error.type``."""
    with tracing().tracer.start_as_current_span(
        name, record_exception=False, set_status_on_exception=False
    ) as span:
        for key, value in (attributes or {}).items():
            if value is not None:
                span.set_attribute(key, value)
        try:
            yield span
        except GeneratorExit:  # the consumer stopped reading: not a failure
            raise
        except BaseException as exc:
            fail(span, type(exc).__name__, str(exc))
            raise


def fail(span: Span, error_type: str, message: str = "") -> None:
    """Mark ``span`` failed the conventions' way: ``error.type`` and an error status."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message[:500] or None))

"""Spans for pipeline stages, through the OpenTelemetry API.

Without an SDK configured the API is a no-op costing a function call, so stages are always
traced and a deployment turns export on with the usual ``OTEL_*`` settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

_tracer = trace.get_tracer("astromesh")
logger = logging.getLogger("astromesh.pipeline")


@contextmanager
def stage(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """Trace one named stage (``astromesh.prepare``, ``astromesh.step``...) and log its time."""
    started = time.perf_counter()
    with _tracer.start_as_current_span(f"astromesh.{name}") as span:
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(f"astromesh.{key}", value)
        try:
            yield span
        finally:
            logger.debug(
                "stage=<%s> run_id=<%s> | %.2f ms",
                name,
                attributes.get("run_id"),
                (time.perf_counter() - started) * 1000.0,
            )

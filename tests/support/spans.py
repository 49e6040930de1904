"""The SDK's in-memory exporter on the runtime's own tracer provider, shared by the tests that
look at spans (the provider keeps its processors for the process's life: one exporter is
attached once and emptied around each test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from astromesh.telemetry.provider import tracing

_EXPORTER = InMemorySpanExporter()
_attached_to: list[object] = []


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """The exporter, empty, receiving every span the runtime finishes in the block."""
    provider = tracing().provider
    if provider not in _attached_to:  # a test may have rebuilt the provider (OTLP export)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _attached_to.append(provider)
    _EXPORTER.clear()
    try:
        yield _EXPORTER
    finally:
        _EXPORTER.clear()

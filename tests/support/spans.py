"""The SDK's in-memory exporter on the runtime's own tracer provider, shared by the tests that
look at spans (a provider keeps its processors for its life: one exporter is attached once
per provider and emptied around each test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from astromesh.telemetry.provider import tracing

_exporters: dict[int, tuple[object, InMemorySpanExporter]] = {}


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """The exporter, empty, receiving every span the runtime finishes in the block (one per
    provider: a test that rebuilds the provider, for OTLP export, shuts the old one's down)."""
    built = tracing()
    provider = built.provider
    if id(provider) not in _exporters:
        exporter = InMemorySpanExporter()
        built.add_span_processor(SimpleSpanProcessor(exporter))
        _exporters[id(provider)] = (provider, exporter)
    exporter = _exporters[id(provider)][1]
    exporter.clear()
    try:
        yield exporter
    finally:
        exporter.clear()

"""The Lambda runtime layer leaves the OTLP exporter out (infra/bundling.py): an endpoint
set without it keeps spans with the runs and says so, instead of failing the first span."""

from __future__ import annotations

import logging
import sys

import pytest

from astromesh.telemetry import provider

EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def test_an_endpoint_without_the_exporter_keeps_spans_and_warns(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, EXPORTER, None)  # what `import` finds: ImportError
    with caplog.at_level(logging.WARNING, logger="astromesh.telemetry"):
        tracing = provider._build({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing.exporting is False
    with tracing.tracer.start_as_current_span("kept") as span:
        assert span.get_span_context().is_valid
    assert "not exported" in caplog.text and "OTEL_EXPORTER_OTLP_ENDPOINT" in caplog.text
    tracing.provider.shutdown()


def test_the_exporter_is_used_when_installed():
    pytest.importorskip(EXPORTER)
    tracing = provider._build({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing.exporting is True
    tracing.provider.shutdown()

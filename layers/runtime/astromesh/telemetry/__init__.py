"""Tracing (OpenTelemetry GenAI spans kept with each run and exported over OTLP when
configured: :mod:`.genai`, :mod:`.tracing`, :mod:`.scope`), the runtime's metrics
(:mod:`.metrics`: EMF in Lambda, OpenTelemetry elsewhere) and the local server's Prometheus
exposition of them (:mod:`.prometheus`, imported only by the server: it needs the ``server``
extra). Nothing here imports the OpenTelemetry SDK until a span is recorded."""

from astromesh.telemetry.tracing import operation, stage

__all__ = ["operation", "stage"]

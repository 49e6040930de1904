"""Tracing of pipeline stages (OpenTelemetry API), the runtime's metrics (:mod:`.metrics`: EMF
in Lambda, OpenTelemetry elsewhere) and the local server's Prometheus exposition of them
(:mod:`.prometheus`, imported only by the server: it needs the ``server`` extra)."""

from astromesh.telemetry.tracing import stage

__all__ = ["stage"]

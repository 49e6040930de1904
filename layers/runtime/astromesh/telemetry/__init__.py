"""Tracing of pipeline stages (OpenTelemetry API)."""

from astromesh.telemetry.tracing import stage

__all__ = ["stage"]

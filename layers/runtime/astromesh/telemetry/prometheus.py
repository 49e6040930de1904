"""Prometheus exposition of the runtime's metrics, for the local server's ``GET /metrics``.

The runtime records through the OpenTelemetry metrics API (:class:`OtelMetrics`); this module
gives it an SDK ``MeterProvider`` whose only reader is OpenTelemetry's
``PrometheusMetricReader``, and renders what that reader collects in the Prometheus text
format. Nothing is pushed and no thread runs: each scrape collects the current cumulative
values.

How the runtime gets the meter: the local server's app factory
(:func:`astromesh.channels.app.create_dev_app`) builds a :class:`PrometheusExporter` first,
then the runtime with ``AgentRuntime(metrics=metrics_from_env(meter=exporter.meter))``, and
hands the exporter to ``create_app``, which serves it. :func:`metrics_from_env` stays the one
place a sink is chosen, so ``ASTROMESH_METRICS=none`` (or ``emf``) still turns the runtime's
OpenTelemetry metrics off, leaving the endpoint empty.

The provider is *not* installed as OpenTelemetry's global one, and the reader registers on a
:class:`~prometheus_client.CollectorRegistry` of its own rather than prometheus_client's
global ``REGISTRY``: two apps in one process (tests, or a server that embeds this one) each
expose their own runtime's numbers, and neither collides with the other nor with anything
else registered globally. That takes the reader's ``registry`` argument (and
``scope_info_enabled``, to leave out ``otel_scope_*`` labels that would repeat one constant on
every series): opentelemetry-exporter-prometheus 0.64b0 and later. With an older exporter,
importing this module raises :class:`ImportError`, as without one, rather than writing to the
global registry.

What Prometheus sees (OpenTelemetry's names mapped by the exporter; agent and status are
labels, never the run id):

- ``astromesh_runs_finished_total`` and ``astromesh_runs_failed_total``,
- ``astromesh_run_cost_usd_total``,
- ``astromesh_run_tokens_total`` (label ``direction``: ``input`` or ``output``),
- ``astromesh_run_duration_seconds`` (histogram),
- ``astromesh_circuit_opened_total`` (label ``circuit``),
- ``astromesh_messages_ignored_total`` (labels ``channel`` and ``reason``),
- ``target_info`` (the OpenTelemetry resource: ``service.name`` is ``astromesh`` unless
  ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` say otherwise).

Needs the ``server`` extra (opentelemetry-sdk, opentelemetry-exporter-prometheus,
prometheus-client); importing this module without them raises :class:`ImportError`, which the
app takes as "no ``/metrics`` route".
"""

from __future__ import annotations

import inspect

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from astromesh import __version__

_READER_PARAMETERS = inspect.signature(PrometheusMetricReader.__init__).parameters
if not {"registry", "scope_info_enabled"} <= _READER_PARAMETERS.keys():  # pragma: no cover
    raise ImportError(
        "opentelemetry-exporter-prometheus is too old to write to a registry of its own"
        " (0.64b0 or later is needed): pip install -U 'astromesh[server]'"
    )

SERVICE = "astromesh"
"""The default ``service.name`` of the exported resource."""


class PrometheusExporter:
    """A dedicated MeterProvider, read by Prometheus through a registry of its own.

    Attributes:
        registry: the prometheus_client registry the reader is registered on (only it).
        provider: the OpenTelemetry SDK provider; not the global one.
        meter: the ``astromesh`` meter of ``provider``, for :class:`OtelMetrics`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # One meter feeds this provider: otel_scope_* labels would repeat a constant.
        self._reader = PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
        self.provider = MeterProvider(
            metric_readers=[self._reader],
            resource=_resource(),
            # No exporter thread to stop and nothing buffered: exit needs no hook (and a hook
            # would keep every provider a test process builds alive until it exits).
            shutdown_on_exit=False,
        )
        self.meter: Meter = self.provider.get_meter(SERVICE, __version__)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition of everything recorded so far, and its content type.

        The format follows the scraper's ``Accept`` header as prometheus_client's own handler
        does: OpenMetrics when asked for, otherwise the classic text format
        (``text/plain; version=0.0.4``).
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def shutdown(self) -> None:
        """Stop recording and take the reader off its registry."""
        self.provider.shutdown()


def _resource() -> Resource:
    """OpenTelemetry's resource from the environment (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``), named :data:`SERVICE` when the environment names no
    service (attributes given to ``Resource.create`` would override the environment's)."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: SERVICE}))
    return detected


__all__ = ["SERVICE", "PrometheusExporter"]

"""The metrics the alarms watch.

Two sources, both read as they are:

- AWS's own: Lambda ``Errors`` / ``Throttles`` per function, Step Functions
  ``ExecutionsFailed`` / ``ExecutionsTimedOut`` per machine, API Gateway ``5XXError``; and the
  ``api`` handler's Powertools EMF metrics (namespace ``Astromesh``, dimension ``service``):
  ``Requests``, ``ServerErrors``, ``ClientErrors``.
- The runtime's: ``CircuitOpened``, ``RunsFailed`` and ``RunCostUSD``, written as CloudWatch
  EMF by every function that runs agents (:class:`astromesh.telemetry.metrics.EmfMetrics`, on
  by default inside Lambda) in namespace :data:`NAMESPACE` with the one dimension
  :data:`STAGE_DIMENSION` = ``$ASTROMESH_STAGE``.

The runtime's names are defined once, in :mod:`astromesh.telemetry.metrics`, and re-exported
here, so the alarms cannot watch a name the runtime does not write. :data:`ALARMED_METRICS` are
the ones it writes as EMF; its other metrics (runs finished, run duration) go to OpenTelemetry
only (the local server's Prometheus endpoint), Step Functions' own metrics covering them here.
"""

from __future__ import annotations

from astromesh.telemetry.metrics import (
    ALARMED_METRICS,
    CIRCUIT_OPENED,
    NAMESPACE,
    RUN_COST,
    RUNS_FAILED,
    RUNTIME_METRICS,
    STAGE_DIMENSION,
    RuntimeMetric,
)

__all__ = [
    "ALARMED_METRICS",
    "CIRCUIT_OPENED",
    "NAMESPACE",
    "RUNS_FAILED",
    "RUNTIME_METRICS",
    "RUN_COST",
    "STAGE_DIMENSION",
    "RuntimeMetric",
]

"""Runtime metrics: the numbers operators alarm on and watch, emitted where the deployment
reads them.

Three events matter enough to page someone, and only the runtime sees them
(:data:`ALARMED_METRICS`):

- a provider's circuit breaker opens (:data:`CIRCUIT_OPENED`),
- a run ends failed or timed out (:data:`RUNS_FAILED`), whichever executor ran it,
- what a run cost (:data:`RUN_COST`), summed into a cost-per-day alarm.

Four more describe the traffic, for dashboards rather than pages: every finished run by agent
and status (:data:`RUNS_FINISHED`), its wall-clock duration (:data:`RUN_DURATION`, a
histogram in seconds), its tokens in and out (:data:`RUN_TOKENS`), and the webhook items
acknowledged without an answer because their shape is wrong (:data:`MESSAGES_IGNORED`).

Where they go depends on where the runtime runs, so the sink is chosen once per
:class:`~astromesh.runtime.AgentRuntime` (:func:`metrics_from_env`):

- in AWS Lambda, CloudWatch embedded metric format (:class:`EmfMetrics`): one JSON line on
  stdout per event, turned into metrics by CloudWatch Logs with no API call and no extra
  latency; namespace :data:`NAMESPACE` and the single dimension :data:`STAGE_DIMENSION`, which
  is what the alarms in ``infra/stacks/observability.py`` watch. Only the alarmed three are
  written: every EMF line costs log bytes on every run, and Step Functions already publishes
  run counts and durations per state machine (``ExecutionsSucceeded``, ``ExecutionTime``...);
- everywhere else, the OpenTelemetry metrics API (:class:`OtelMetrics`): all seven, a no-op
  until an SDK is configured. The local server (``astromesh dev``) configures one with a
  Prometheus reader and serves it at ``GET /metrics`` (:mod:`astromesh.telemetry.prometheus`);
  any other process can configure the global provider (OTLP...) with the usual settings.

Emitting never fails a run: a sink that raises is logged and ignored.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from astromesh.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter

    from astromesh.runs.state import RunState

logger = logging.getLogger("astromesh.telemetry")

NAMESPACE = "Astromesh"
"""The CloudWatch namespace of every runtime metric."""
STAGE_DIMENSION = "Stage"
"""The one dimension: low cardinality, so one alarm per stage covers every agent and provider
(agent, provider and run id travel as EMF properties, searchable in Logs Insights)."""
STAGE_ENV = "ASTROMESH_STAGE"
"""``dev`` / ``prod`` in AWS (set by the CDK app); ``local`` when unset."""
METRICS_ENV = "ASTROMESH_METRICS"
"""``emf``, ``otel`` or ``none``; unset means ``emf`` inside Lambda and ``otel`` elsewhere."""
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"

Property = str | int | float


@dataclass(frozen=True, slots=True)
class RuntimeMetric:
    """One metric the runtime emits: its CloudWatch and OpenTelemetry names, and when.

    ``statistic`` is how an alarm or a graph should aggregate it; ``unit`` is CloudWatch's unit
    name. ``emf`` says whether it is written as CloudWatch EMF in Lambda, where each such metric
    is watched by an alarm (:data:`ALARMED_METRICS`); the others only go to OpenTelemetry.
    ``instrument`` is the OpenTelemetry instrument, and ``buckets`` a histogram's bucket
    boundaries (an advisory the SDK applies unless a view overrides it).
    """

    name: str
    otel_name: str
    unit: Literal["Count", "None", "Seconds"]
    otel_unit: str
    statistic: str
    emitted_when: str
    emf: bool = True
    instrument: Literal["counter", "histogram"] = "counter"
    buckets: tuple[float, ...] | None = None


CIRCUIT_OPENED = RuntimeMetric(
    "CircuitOpened",
    "astromesh.circuit.opened",
    "Count",
    "{transition}",
    "Sum",
    "a provider's circuit breaker goes to open (value 1, once per transition, by the instance "
    "whose failure opened it; the circuit as a property, not a dimension)",
)
RUNS_FAILED = RuntimeMetric(
    "RunsFailed",
    "astromesh.runs.failed",
    "Count",
    "{run}",
    "Sum",
    "a run is finalized as failed or timed_out (value 1), whichever executor ran it",
)
RUN_COST = RuntimeMetric(
    "RunCostUSD",
    "astromesh.run.cost",
    "None",
    "usd",
    "Sum",
    "a run is finalized: its total priced cost in USD (the router's per-call cost, summed)",
)
RUNS_FINISHED = RuntimeMetric(
    "RunsFinished",
    "astromesh.runs.finished",
    "Count",
    "{run}",
    "Sum",
    "a run is finalized, whatever its status (value 1; agent and status as attributes)",
    emf=False,
)
RUN_DURATION = RuntimeMetric(
    "RunDurationSeconds",
    "astromesh.run.duration",
    "Seconds",
    "s",
    "p95",
    "a run is finalized: seconds from its creation to its end (time spent waiting for a "
    "client's tool results included)",
    emf=False,
    instrument="histogram",
    # From a one-call answer to a long agent loop; OpenTelemetry's default buckets are sized
    # for milliseconds and would put every run in the first few.
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
RUN_TOKENS = RuntimeMetric(
    "RunTokens",
    "astromesh.run.tokens",
    "Count",
    "{token}",
    "Sum",
    "a run is finalized: its tokens over every model call it made, side calls included, twice:"
    " direction input and direction output (agent and status as attributes)",
    emf=False,
)
MESSAGES_IGNORED = RuntimeMetric(
    "MessagesIgnored",
    "astromesh.messages.ignored",
    "Count",
    "{message}",
    "Sum",
    "a verified webhook delivery held an item that cannot be answered because its shape is "
    "wrong (no id, no sender or chat to answer, a field of the wrong type): acknowledged, "
    "logged with the reason, not answered (value 1; channel and reason as attributes)",
    emf=False,
)
RUNTIME_METRICS = (
    CIRCUIT_OPENED,
    RUNS_FAILED,
    RUN_COST,
    RUNS_FINISHED,
    RUN_DURATION,
    RUN_TOKENS,
    MESSAGES_IGNORED,
)
"""Every metric the runtime emits (all of them through OpenTelemetry)."""
ALARMED_METRICS = tuple(m for m in RUNTIME_METRICS if m.emf)
"""The metrics written as CloudWatch EMF in Lambda, each watched by an alarm."""

_FAILED_STATUSES = frozenset({"failed", "timed_out"})


class Metrics(ABC):
    """Where the runtime's metrics go. Subclasses write one data point (:meth:`_write`); the
    event methods here decide which points an event makes, the same for every sink."""

    def emit(self, metric: RuntimeMetric, value: float, **properties: Property) -> None:
        """Write one data point; a failing sink is logged, never raised into a run."""
        try:
            self._write(metric, value, properties)
        except Exception:
            logger.warning("metric=<%s> | could not be emitted", metric.name, exc_info=True)

    @abstractmethod
    def _write(
        self, metric: RuntimeMetric, value: float, properties: Mapping[str, Property]
    ) -> None:
        """Write one data point with its (non-dimension) properties."""

    def circuit_opened(self, circuit: str) -> None:
        """A circuit (``provider/model``) went to open because of this instance's call."""
        self.emit(CIRCUIT_OPENED, 1, circuit=circuit)

    def message_ignored(self, channel: str, reason: str) -> None:
        """A channel acknowledged an item it cannot answer; ``reason`` is a short, fixed
        phrase (not the item's content), so it stays a low-cardinality attribute."""
        self.emit(MESSAGES_IGNORED, 1, channel=channel, reason=reason)

    def run_finished(self, run: RunState) -> None:
        """A run reached its end: its cost, count and duration always, and a failure when it
        failed."""
        properties: dict[str, Property] = {
            "agent": run.agent,
            "run_id": run.id,
            "status": run.status.value,
        }
        if run.status.value in _FAILED_STATUSES:
            self.emit(RUNS_FAILED, 1, **properties)
        self.emit(RUN_COST, run.usage.cost, **properties)
        self.emit(RUNS_FINISHED, 1, **properties)
        self.emit(RUN_DURATION, _seconds_since(run.created_at), **properties)
        self.emit(RUN_TOKENS, run.usage.tokens_in, direction="input", **properties)
        self.emit(RUN_TOKENS, run.usage.tokens_out, direction="output", **properties)


def _seconds_since(start: datetime) -> float:
    """Seconds from ``start`` to now, never negative (clocks of two Lambda hosts may disagree
    by a little; a naive time, as an old stored run might hold, is taken as UTC)."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - start).total_seconds())


class NullMetrics(Metrics):
    """Metrics turned off (``ASTROMESH_METRICS=none``)."""

    def _write(
        self, metric: RuntimeMetric, value: float, properties: Mapping[str, Property]
    ) -> None:
        return None


class EmfMetrics(Metrics):
    """CloudWatch embedded metric format: one JSON document per data point, on stdout.

    Written here rather than through Powertools' ``single_metric`` because that adds a
    ``service`` dimension whenever ``POWERTOOLS_SERVICE_NAME`` is set (every function sets it),
    and a metric with dimensions {Stage, service} is a different metric from the {Stage} one
    the alarms watch. The format is small and stable (see the EMF specification); each line is
    self-contained, so there is nothing to flush when a Lambda invocation ends.

    Args:
        stage: the value of the ``Stage`` dimension.
        namespace: the CloudWatch namespace.
        stream: where the lines go (Lambda sends stdout to CloudWatch Logs).
        clock: milliseconds since the epoch, for the EMF timestamp.
    """

    def __init__(
        self,
        stage: str,
        *,
        namespace: str = NAMESPACE,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stage = stage
        self.namespace = namespace
        self._stream = stream
        self._clock = clock

    def document(
        self, metric: RuntimeMetric, value: float, properties: Mapping[str, Property]
    ) -> dict[str, Any]:
        """The EMF document of one data point (properties never override the metric or the
        dimension: they are written first)."""
        return {
            **properties,
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [[STAGE_DIMENSION]],
                        "Metrics": [{"Name": metric.name, "Unit": metric.unit}],
                    }
                ],
            },
            STAGE_DIMENSION: self.stage,
            metric.name: value,
        }

    def _write(
        self, metric: RuntimeMetric, value: float, properties: Mapping[str, Property]
    ) -> None:
        if not metric.emf:  # not worth its log bytes in CloudWatch (see the module docstring)
            return
        line = json.dumps(self.document(metric, value, properties), separators=(",", ":"))
        stream = self._stream or sys.stdout  # looked up late: tests and Lambda swap stdout
        stream.write(line + "\n")
        stream.flush()


class OtelMetrics(Metrics):
    """The OpenTelemetry metrics API: counters and histograms a configured SDK exports, free
    without one.

    Properties become attributes, except the run id: one time series per run would swamp any
    metrics backend.

    Args:
        meter: the meter to create instruments on: the local server passes its Prometheus
            provider's (:class:`astromesh.telemetry.prometheus.PrometheusExporter`); by default
            the global provider's ``astromesh`` meter, looked up once (configure the SDK before
            building the runtime).
    """

    _HIGH_CARDINALITY = frozenset({"run_id"})

    def __init__(self, meter: Meter | None = None) -> None:
        if meter is None:
            from opentelemetry import metrics

            meter = metrics.get_meter("astromesh")
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        for m in RUNTIME_METRICS:
            if m.instrument == "histogram":
                self._histograms[m.name] = meter.create_histogram(
                    m.otel_name,
                    unit=m.otel_unit,
                    description=m.emitted_when,
                    explicit_bucket_boundaries_advisory=m.buckets,
                )
            else:
                self._counters[m.name] = meter.create_counter(
                    m.otel_name, unit=m.otel_unit, description=m.emitted_when
                )

    def _write(
        self, metric: RuntimeMetric, value: float, properties: Mapping[str, Property]
    ) -> None:
        if value < 0:  # counters only go up; a negative cost would be a pricing bug
            raise ValueError(f"{metric.name} must not be negative (got {value})")
        attributes = {k: v for k, v in properties.items() if k not in self._HIGH_CARDINALITY}
        if metric.name in self._histograms:
            self._histograms[metric.name].record(value, attributes)
        else:
            self._counters[metric.name].add(value, attributes)


def metrics_from_env(
    env: Mapping[str, str] | None = None, *, meter: Meter | None = None
) -> Metrics:
    """The sink this process should use, from ``ASTROMESH_METRICS`` (see :data:`METRICS_ENV`).

    The one place a sink is picked: a caller with its own OpenTelemetry provider (the local
    server's Prometheus endpoint) passes its ``meter``, used when the choice is ``otel`` and
    ignored otherwise, so ``ASTROMESH_METRICS`` still decides.

    Raises:
        ConfigurationError: an unknown ``ASTROMESH_METRICS`` value (a typo would otherwise silently
            turn off the metrics the alarms depend on).
    """
    env = os.environ if env is None else env
    kind = (env.get(METRICS_ENV) or ("emf" if env.get(LAMBDA_ENV) else "otel")).strip().lower()
    if kind == "emf":
        return EmfMetrics(env.get(STAGE_ENV) or "local")
    if kind == "otel":
        return OtelMetrics(meter)
    if kind == "none":
        return NullMetrics()
    raise ConfigurationError(f"{METRICS_ENV}={kind!r} is not one of: emf, otel, none")


__all__ = [
    "ALARMED_METRICS",
    "CIRCUIT_OPENED",
    "METRICS_ENV",
    "NAMESPACE",
    "RUNS_FAILED",
    "RUNS_FINISHED",
    "RUNTIME_METRICS",
    "RUN_COST",
    "RUN_DURATION",
    "RUN_TOKENS",
    "STAGE_DIMENSION",
    "STAGE_ENV",
    "EmfMetrics",
    "Metrics",
    "NullMetrics",
    "OtelMetrics",
    "RuntimeMetric",
    "metrics_from_env",
]

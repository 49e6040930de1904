"""The metrics the alarms watch, defined once: what exists today and what the runtime should emit.

Exists today, used as is:
- Lambda's ``Errors`` / ``Throttles`` per function, Step Functions' ``ExecutionsFailed`` /
  ``ExecutionsTimedOut`` per machine, API Gateway's ``5XXError``.
- The ``api`` handler's Powertools EMF metrics (namespace ``Astromesh``, dimension ``service``):
  ``Requests``, ``ServerErrors``, ``ClientErrors``.
- The ``orchestration_step`` handler's log line ``stage done`` with ``action`` and
  ``answer.status``: a metric filter turns every failed or timed-out finalize into
  :data:`RUNS_FAILED_FROM_LOGS` (runs that fail *inside* a successful execution, which
  ``ExecutionsFailed`` does not count).

Not emitted by the runtime yet (alarms are in place and stay at INSUFFICIENT_DATA until it
does): :data:`RUNTIME_METRICS`, as CloudWatch EMF in namespace :data:`NAMESPACE` with the one
dimension :data:`STAGE_DIMENSION` (value: ``$ASTROMESH_STAGE``).
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "Astromesh"
STAGE_DIMENSION = "Stage"


@dataclass(frozen=True, slots=True)
class RuntimeMetric:
    """One metric the runtime should emit (EMF), and when."""

    name: str
    unit: str
    statistic: str
    emitted_when: str


CIRCUIT_OPENED = RuntimeMetric(
    "CircuitOpened",
    "Count",
    "Sum",
    "a provider's circuit breaker goes to open (value 1, once per transition, by the instance "
    "whose failure opened it; the provider key as a property, not a dimension)",
)
RUNS_FAILED = RuntimeMetric(
    "RunsFailed",
    "Count",
    "Sum",
    "a run is finalized as failed or timed_out (value 1), whichever executor ran it",
)
RUN_COST = RuntimeMetric(
    "RunCostUSD",
    "None",
    "Sum",
    "a run is finalized: its total priced cost in USD (the router's per-call cost, summed)",
)
RUNTIME_METRICS = (CIRCUIT_OPENED, RUNS_FAILED, RUN_COST)


def log_namespace(stage: str) -> str:
    """Namespace of the metrics made from logs: apart from :data:`NAMESPACE`, so that once the
    runtime emits ``RunsFailed`` itself the two sources are never added together, and per
    stage because a metric filter cannot add a constant dimension."""
    return f"{NAMESPACE}/Logs/{stage}"


RUNS_FAILED_FROM_LOGS = "RunsFailed"
RUNS_FAILED_PATTERN = (
    '{ ($.action = "finalize") && (($.answer.status = "failed") || '
    '($.answer.status = "timed_out")) }'
)
"""Matches the orchestration_step handler's ``stage done`` line for a finalize that ended the
run failed (Powertools puts ``action`` and ``answer`` at the top level of the JSON line)."""

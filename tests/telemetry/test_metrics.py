"""Runtime metrics: the EMF documents CloudWatch turns into the alarms' metrics, the OpenTelemetry
counters a local SDK exports, and the events that emit them (a circuit opening in the real
Redis, a run ending, in-process and on the state machine)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from astromesh.errors import ConfigurationError
from astromesh.models.breaker import BreakerSettings, MemoryCircuitBreaker
from astromesh.models.breaker_redis import RedisCircuitBreaker
from astromesh.runs.state import RunState, RunStatus
from astromesh.telemetry.metrics import (
    ALARMED_METRICS,
    CIRCUIT_OPENED,
    RUN_COST,
    RUNS_FAILED,
    EmfMetrics,
    Metrics,
    NullMetrics,
    OtelMetrics,
    metrics_from_env,
)
from tests.support.emf import emf_lines, points

# -- the EMF document ----------------------------------------------------------------------


def test_an_emf_document_is_what_cloudwatch_extracts_the_alarm_metric_from():
    stream = io.StringIO()
    sink = EmfMetrics("prod", stream=stream, clock=lambda: 1_700_000_000.5)

    sink.circuit_opened("house/scripted")

    [document] = emf_lines(stream.getvalue())
    assert document == {
        "_aws": {
            "Timestamp": 1_700_000_000_500,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Astromesh",
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": "CircuitOpened", "Unit": "Count"}],
                }
            ],
        },
        "Stage": "prod",
        "CircuitOpened": 1,
        "circuit": "house/scripted",
    }


def test_a_property_cannot_overwrite_the_dimension_or_the_value():
    stream = io.StringIO()
    EmfMetrics("dev", stream=stream).emit(RUNS_FAILED, 1, Stage="spoofed", RunsFailed=99)

    [document] = emf_lines(stream.getvalue())
    assert (document["Stage"], document["RunsFailed"]) == ("dev", 1)


def test_emf_writes_only_the_alarmed_metrics_so_a_run_costs_no_more_log_lines():
    stream = io.StringIO()
    sink = EmfMetrics("prod", stream=stream)

    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        sink.run_finished(RunState(agent="helper", namespace="t", query="q", status=status))

    written = [
        d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
        for d in emf_lines(stream.getvalue())
    ]
    assert written == ["RunCostUSD", "RunsFailed", "RunCostUSD"]
    assert ALARMED_METRICS == (CIRCUIT_OPENED, RUNS_FAILED, RUN_COST)


def test_a_failing_sink_never_fails_the_caller(caplog):
    class Broken(Metrics):
        def _write(self, metric, value, properties):
            raise OSError("stdout closed")

    Broken().circuit_opened("x/y")  # no exception

    assert "could not be emitted" in caplog.text


# -- which sink ----------------------------------------------------------------------------


def test_lambda_emits_emf_with_the_stage_and_elsewhere_opentelemetry():
    in_lambda = metrics_from_env({"AWS_LAMBDA_FUNCTION_NAME": "api", "ASTROMESH_STAGE": "prod"})
    assert isinstance(in_lambda, EmfMetrics) and in_lambda.stage == "prod"
    assert isinstance(metrics_from_env({}), OtelMetrics)
    assert isinstance(metrics_from_env({"ASTROMESH_METRICS": "none"}), NullMetrics)
    local_emf = metrics_from_env({"ASTROMESH_METRICS": "EMF"})
    assert isinstance(local_emf, EmfMetrics) and local_emf.stage == "local"


def test_an_unknown_sink_is_a_configuration_error_naming_the_setting():
    with pytest.raises(ConfigurationError, match=r"ASTROMESH_METRICS='prometheus' is not one of"):
        metrics_from_env({"ASTROMESH_METRICS": "prometheus"})


# -- OpenTelemetry -------------------------------------------------------------------------


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


def test_opentelemetry_counters_carry_agent_and_status_but_never_the_run_id():
    reader = InMemoryMetricReader()
    sink = OtelMetrics(MeterProvider(metric_readers=[reader]).get_meter("astromesh"))
    failed = RunState(agent="helper", namespace="t", query="q", status=RunStatus.FAILED)
    failed.usage.cost = 0.25
    ok = RunState(agent="helper", namespace="t", query="q", status=RunStatus.SUCCEEDED)
    ok.usage.cost = 0.5

    sink.run_finished(failed)
    sink.run_finished(ok)
    sink.circuit_opened("house/scripted")

    found = otel_points(reader)
    [runs_failed] = found[RUNS_FAILED.otel_name]
    assert runs_failed.value == 1
    assert dict(runs_failed.attributes) == {"agent": "helper", "status": "failed"}
    cost = {p.attributes["status"]: p.value for p in found[RUN_COST.otel_name]}
    assert cost == {"failed": 0.25, "succeeded": 0.5}
    [opened] = found[CIRCUIT_OPENED.otel_name]
    assert opened.value == 1 and dict(opened.attributes) == {"circuit": "house/scripted"}


# -- circuit opens -------------------------------------------------------------------------


async def test_only_the_instance_whose_failure_opened_the_shared_circuit_counts_it(
    redis_url, redis_prefix
):
    settings = BreakerSettings(failure_threshold=3, recovery_timeout=60)
    streams = [io.StringIO(), io.StringIO()]
    a, b = (
        RedisCircuitBreaker(
            redis_url, settings, prefix=redis_prefix, metrics=EmfMetrics("t", stream=s)
        )
        for s in streams
    )
    try:
        assert await a.record_failure("p/m") is False
        assert await a.record_failure("p/m") is False
        assert await b.record_failure("p/m") is True  # the third failure, from b, opens it
        assert await a.record_failure("p/m") is False  # stragglers while open: no new opening
        assert await b.record_failure("p/m") is False
    finally:
        await a.aclose()
        await b.aclose()

    assert points(emf_lines(streams[0].getvalue()), CIRCUIT_OPENED) == []
    [opened] = points(emf_lines(streams[1].getvalue()), CIRCUIT_OPENED)
    assert opened["circuit"] == "p/m"


async def test_a_failed_half_open_trial_is_a_new_opening():
    clock = [0.0]
    stream = io.StringIO()
    breaker = MemoryCircuitBreaker(
        BreakerSettings(failure_threshold=1, recovery_timeout=10),
        clock=lambda: clock[0],
        metrics=EmfMetrics("t", stream=stream),
    )
    assert await breaker.record_failure("p/m") is True
    clock[0] = 11.0
    assert await breaker.allow("p/m")  # the half-open trial
    assert await breaker.record_failure("p/m") is True

    assert len(points(emf_lines(stream.getvalue()), CIRCUIT_OPENED)) == 2

"""The local server's Prometheus exposition: the runtime's OpenTelemetry metrics rendered from a
registry of their own, so two exporters in one process never see each other's numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from astromesh.runs.state import RunState, RunStatus
from astromesh.telemetry.metrics import OtelMetrics, metrics_from_env
from astromesh.telemetry.prometheus import PrometheusExporter


def samples(exporter: PrometheusExporter) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``{sample name: [(labels, value)]}`` of the exporter's text exposition."""
    body, content_type = exporter.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def finished(status: RunStatus, *, cost: float, seconds: float, agent: str = "helper") -> RunState:
    run = RunState(agent=agent, query="q", status=status)
    run.usage.cost = cost
    run.created_at = datetime.now(UTC) - timedelta(seconds=seconds)
    return run


def test_the_runtime_metrics_render_with_agent_and_status_labels_and_no_run_id():
    exporter = PrometheusExporter()
    sink = metrics_from_env({}, meter=exporter.meter)
    assert isinstance(sink, OtelMetrics)

    sink.run_finished(finished(RunStatus.SUCCEEDED, cost=0.5, seconds=3))
    sink.run_finished(finished(RunStatus.SUCCEEDED, cost=0.25, seconds=40))
    sink.run_finished(finished(RunStatus.TIMED_OUT, cost=0.125, seconds=0))
    sink.circuit_opened("house/scripted")

    found = samples(exporter)
    ok = {"agent": "helper", "status": "succeeded"}
    timed_out = {"agent": "helper", "status": "timed_out"}
    assert sorted(found["astromesh_runs_finished_total"], key=str) == sorted(
        [(ok, 2.0), (timed_out, 1.0)], key=str
    )
    assert found["astromesh_runs_failed_total"] == [(timed_out, 1.0)]
    assert {labels["status"]: v for labels, v in found["astromesh_run_cost_usd_total"]} == {
        "succeeded": 0.75,
        "timed_out": 0.125,
    }
    assert found["astromesh_circuit_opened_total"] == [({"circuit": "house/scripted"}, 1.0)]
    # The histogram is in seconds, with buckets sized for runs (not OpenTelemetry's
    # millisecond defaults): 3 s and 40 s land in different buckets.
    buckets = {
        float(labels["le"]): value
        for labels, value in found["astromesh_run_duration_seconds_bucket"]
        if labels["status"] == "succeeded"
    }
    assert [buckets[le] for le in (1, 5, 60, float("inf"))] == [0, 1, 2, 2]
    [(_, total)] = [s for s in found["astromesh_run_duration_seconds_sum"] if s[0] == ok]
    assert 43 <= total < 45
    names = {name for series in found.values() for labels, _ in series for name in labels}
    assert "run_id" not in names and not any(n.startswith("otel_scope") for n in names)


def test_two_exporters_in_one_process_keep_their_own_numbers_off_the_global_registry():
    first, second = PrometheusExporter(), PrometheusExporter()
    metrics_from_env({}, meter=first.meter).run_finished(
        finished(RunStatus.SUCCEEDED, cost=1, seconds=1)
    )

    assert samples(first)["astromesh_runs_finished_total"][0][1] == 1
    assert "astromesh_runs_finished_total" not in samples(second)
    global_names = {m.name for m in REGISTRY.collect()}
    assert not any(name.startswith("astromesh") for name in global_names)


def test_a_scraper_asking_for_openmetrics_gets_it():
    exporter = PrometheusExporter()
    metrics_from_env({}, meter=exporter.meter).circuit_opened("p/m")

    body, content_type = exporter.render("application/openmetrics-text; version=1.0.0")

    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.decode().rstrip().endswith("# EOF")


def test_the_service_is_astromesh_unless_the_environment_names_one(monkeypatch):
    def service_name(exporter: PrometheusExporter) -> str:
        [(labels, _)] = samples(exporter)["target_info"]
        return labels["service_name"]

    def exporter_with_a_point() -> PrometheusExporter:
        exporter = PrometheusExporter()
        metrics_from_env({}, meter=exporter.meter).circuit_opened("p/m")
        return exporter

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert service_name(exporter_with_a_point()) == "astromesh"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "agents-eu")
    assert service_name(exporter_with_a_point()) == "agents-eu"


def test_ASTROMESH_METRICS_still_decides_when_a_meter_is_given():
    exporter = PrometheusExporter()
    sink = metrics_from_env({"ASTROMESH_METRICS": "none"}, meter=exporter.meter)

    sink.run_finished(finished(RunStatus.FAILED, cost=1, seconds=1))

    assert not any(name.startswith("astromesh") for name in samples(exporter))


def test_shutdown_takes_the_reader_off_its_registry():
    exporter = PrometheusExporter()
    metrics_from_env({}, meter=exporter.meter).circuit_opened("p/m")
    assert list(exporter.registry.collect())

    exporter.shutdown()

    assert list(exporter.registry.collect()) == []


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.CANCELLED])
def test_a_run_that_did_not_fail_counts_as_finished_but_not_failed(status):
    exporter = PrometheusExporter()
    metrics_from_env({}, meter=exporter.meter).run_finished(finished(status, cost=0, seconds=0))

    found = samples(exporter)
    assert found["astromesh_runs_finished_total"] == [
        ({"agent": "helper", "status": status.value}, 1.0)
    ]
    assert "astromesh_runs_failed_total" not in found

"""``infra/dashboards/grafana-astromesh.json`` queries only metrics the runtime exposes: every
metric name in every PromQL expression (panels and template variables) is a sample name of
the Prometheus registry after each runtime metric recorded a point, and every runtime metric
has a panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from astromesh.telemetry.metrics import RUNTIME_METRICS, OtelMetrics
from astromesh.telemetry.prometheus import PrometheusExporter

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "dashboards" / "grafana-astromesh.json"

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(where, PromQL)`` of every panel target and query variable."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", text)
            assert found, f"variable {variable['name']}: not label_values(metric, label)"
            yield f"variable {variable['name']!r}", found[1]


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once label matchers,
    range selectors, grouping clauses, strings and functions are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", promql)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match[0] in _KEYWORDS:
            continue  # a function or an operator keyword
        names.add(match[0])
    return names


def exposed_names() -> set[str]:
    """Every sample name the registry exposes once each runtime metric has a point."""
    exporter = PrometheusExporter()
    try:
        sink = OtelMetrics(exporter.meter)
        for metric in RUNTIME_METRICS:
            sink.emit(metric, 1.0, agent="helper", status="succeeded")
        body, _ = exporter.render()
    finally:
        exporter.shutdown()
    return {
        sample.name
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_the_extraction_reads_promql_as_prometheus_does() -> None:
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, agent) (rate(a_bucket{agent=~"$agent"}[5m])))'
        " / on (agent) b_total offset 5m"
    ) == {"a_bucket", "b_total"}


def test_every_queried_metric_is_exposed_and_every_metric_has_a_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exposed = exposed_names()
    queried: set[str] = set()
    for where, promql in expressions(dashboard):
        names = metric_names(promql)
        assert names, f"{where}: no metric in {promql!r}"
        missing = names - exposed
        assert not missing, f"{where} queries {sorted(missing)}, not exposed: {sorted(exposed)}"
        queried |= names
    families = {name.removesuffix("_total") for name in exposed if name != "target_info"}
    unshown = {f for f in families if not any(q.startswith(f) for q in queried)}
    assert not unshown, f"runtime metrics without a panel: {sorted(unshown)}"


def test_the_dashboard_is_importable_as_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()

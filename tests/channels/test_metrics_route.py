"""``GET /metrics`` on the local server: real runs through the app against a scripted model
server, then a scrape; the same API keys as ``/v1``; no route without the server extra."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from astromesh.channels import ServerSettings, create_app
from astromesh.channels.app import create_dev_app
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from astromesh.telemetry.metrics import NullMetrics, OtelMetrics, metrics_from_env
from astromesh.telemetry.prometheus import PrometheusExporter
from tests.channels.conftest import TEST_TOOL_MODULES, keys_of, services
from tests.support.agents import PRICED_MODEL, write_agent, write_priced_provider
from tests.support.model_servers import Reply

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


@pytest.fixture
async def make_metrics_app(agents_dir: Path) -> AsyncIterator[Callable[..., FastAPI]]:
    """Apps built as ``create_dev_app`` builds them: the exporter first, the runtime recording
    on its meter (over the test's agents folder and an in-memory store)."""
    apps: list[FastAPI] = []

    def make(env: dict[str, str] | None = None, **settings: Any) -> FastAPI:
        settings.setdefault("registered_tool_modules", TEST_TOOL_MODULES)
        exporter = PrometheusExporter()
        runtime = AgentRuntime(
            agents_dir,
            env=env or {},
            state=MemoryBackend(),
            metrics=metrics_from_env(env or {}, meter=exporter.meter),
        )
        app = create_app(runtime, ServerSettings(**settings), prometheus=exporter)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await services(app).aclose()
        await services(app).runtime.close()


async def test_a_scrape_after_real_runs_shows_them_by_agent_and_status(
    agents_dir, make_metrics_app, client_for, openai_server
):
    write_agent(agents_dir, model=PRICED_MODEL)
    write_priced_provider(agents_dir, openai_server.url, breaker_threshold=2)
    client = client_for(make_metrics_app())
    openai_server.push(Reply("ok", tokens_in=40, tokens_out=10))
    openai_server.push(Reply("ok again", tokens_in=40, tokens_out=10))

    for query in ("hello", "hello again"):
        ran = await client.post("/v1/agents/helper/run", json={"query": query})
        assert ran.status_code == 200 and ran.json()["status"] == "succeeded"
    openai_server.push(Reply(status=503), Reply(status=503))  # two failures open the circuit
    failed = await client.post("/v1/agents/helper/run", json={"query": "and again"})
    assert failed.json()["status"] == "failed"

    scrape = await client.get("/metrics")

    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = parse(scrape.text)
    ok = {"agent": "helper", "status": "succeeded"}
    failed_labels = {"agent": "helper", "status": "failed"}
    assert sorted(found["astromesh_runs_finished_total"], key=lambda s: s[0]["status"]) == [
        (failed_labels, 1.0),
        (ok, 2.0),
    ]
    assert found["astromesh_runs_failed_total"] == [(failed_labels, 1.0)]
    cost = {labels["status"]: value for labels, value in found["astromesh_run_cost_usd_total"]}
    assert cost == {"succeeded": pytest.approx(0.12), "failed": 0}
    counts = {
        labels["status"]: value for labels, value in found["astromesh_run_duration_seconds_count"]
    }
    assert counts == {"succeeded": 2, "failed": 1}
    assert all(v > 0 for _, v in found["astromesh_run_duration_seconds_sum"])
    assert found["astromesh_circuit_opened_total"] == [({"circuit": "house/scripted"}, 1.0)]


async def test_the_runtimes_of_two_apps_never_mix(
    agents_dir, make_metrics_app, client_for, openai_server
):
    write_agent(agents_dir, model=PRICED_MODEL)
    write_priced_provider(agents_dir, openai_server.url, breaker_threshold=2)
    busy, idle = client_for(make_metrics_app()), client_for(make_metrics_app())
    openai_server.push(Reply("ok"))

    await busy.post("/v1/agents/helper/run", json={"query": "hello"})

    assert "astromesh_runs_finished_total" in parse((await busy.get("/metrics")).text)
    assert "astromesh_runs_finished_total" not in parse((await idle.get("/metrics")).text)


async def test_ASTROMESH_METRICS_none_leaves_the_route_with_no_runtime_metrics(
    agents_dir, make_metrics_app, client_for, openai_server
):
    write_agent(agents_dir, model=PRICED_MODEL)
    write_priced_provider(agents_dir, openai_server.url, breaker_threshold=2)
    app = make_metrics_app(env={"ASTROMESH_METRICS": "none"})
    assert isinstance(services(app).runtime.metrics, NullMetrics)
    client = client_for(app)
    openai_server.push(Reply("ok"))

    await client.post("/v1/agents/helper/run", json={"query": "hello"})

    scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert not any(name.startswith("astromesh") for name in parse(scrape.text))


# -- auth ----------------------------------------------------------------------------------


async def test_metrics_take_the_apps_keys_and_an_admin_key_allowed_every_agent(
    agents_dir, make_metrics_app, client_for
):
    write_agent(agents_dir)
    app = make_metrics_app()
    client = client_for(app)
    assert (await client.get("/metrics")).status_code == 200  # open server: open metrics

    keys = await keys_of(app)
    operator = await keys.issue("ops", ["*"], role="admin")
    limited = await keys.issue("acme", ["helper"], role="admin")
    developer = await keys.issue("acme", ["*"])  # every agent, but of its tenant only

    refused = await client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/v1/health")).status_code == 200  # health stays open
    forbidden = await client.get("/metrics", headers={"x-api-key": limited.plaintext})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    not_admin = await client.get("/metrics", headers={"x-api-key": developer.plaintext})
    assert not_admin.status_code == 403
    assert "needs the role 'admin'" in not_admin.json()["error"]["message"]
    allowed = await client.get(
        "/metrics", headers={"authorization": f"Bearer {operator.plaintext}"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_required_auth_refuses_a_scrape_without_a_key(
    agents_dir, make_metrics_app, client_for
):
    write_agent(agents_dir)
    client = client_for(make_metrics_app(auth="required"))
    response = await client.get("/metrics")
    assert response.status_code == 401
    assert "missing API key" in response.json()["error"]["message"]


async def test_the_route_is_not_in_the_v1_openapi_document(
    agents_dir, make_metrics_app, client_for
):
    write_agent(agents_dir)
    client = client_for(make_metrics_app())
    assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


# -- which apps serve it -------------------------------------------------------------------


async def test_an_app_without_an_exporter_has_no_metrics_route(make_app, client_for, agents_dir):
    write_agent(agents_dir)
    assert (await client_for(make_app()).get("/metrics")).status_code == 404


@pytest.fixture
def dev_env(agents_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment ``astromesh dev`` gives its app factory."""
    write_agent(agents_dir)
    monkeypatch.setenv("ASTROMESH_AGENTS_DIR", str(agents_dir))
    monkeypatch.setenv("ASTROMESH_STATE_PATH", str(tmp_path / "state.db"))
    monkeypatch.setenv("ASTROMESH_REGISTERED_TOOL_MODULES", ",".join(TEST_TOOL_MODULES))
    for name in (
        "ASTROMESH_METRICS",
        "ASTROMESH_AUTH",
        "ASTROMESH_STATE_BACKEND",
        "AWS_LAMBDA_FUNCTION_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


async def close(app: FastAPI) -> None:
    await services(app).aclose()
    await services(app).runtime.close()


async def test_the_local_servers_app_serves_its_runtimes_metrics(dev_env, client_for):
    app = create_dev_app()
    try:
        runtime_metrics = services(app).runtime.metrics
        assert isinstance(runtime_metrics, OtelMetrics)
        runtime_metrics.circuit_opened("p/m")  # recorded on the exporter's meter, not the global

        scrape = await client_for(app).get("/metrics")

        assert scrape.status_code == 200
        assert parse(scrape.text)["astromesh_circuit_opened_total"] == [({"circuit": "p/m"}, 1)]
    finally:
        await close(app)


@pytest.mark.parametrize(
    "missing",
    ["opentelemetry.exporter.prometheus", "opentelemetry.sdk.metrics", "prometheus_client"],
)
async def test_without_the_server_extras_packages_the_route_is_absent(
    dev_env, client_for, monkeypatch, caplog, missing
):
    monkeypatch.delitem(sys.modules, "astromesh.telemetry.prometheus", raising=False)
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    caplog.set_level(logging.INFO, logger="astromesh.channels.prometheus")

    app = create_dev_app()
    try:
        client = client_for(app)
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/v1/health")).status_code == 200
        assert isinstance(services(app).runtime.metrics, OtelMetrics)  # the global provider's
    finally:
        await close(app)
    assert "pip install 'astromesh[server]'" in caplog.text

"""``GET /v1/traces`` and ``GET /v1/traces/{id}``: the run's spans as stored with it, read by
the caller's tenant only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from astromesh.auth import Role
from tests.channels.conftest import AppFactory, keys_of
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply


@pytest.fixture
async def app_factory(agents_dir: Path) -> AsyncIterator[AppFactory]:
    agents_dir.mkdir(parents=True, exist_ok=True)
    factory = AppFactory(agents_dir)
    yield factory
    await factory.close()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def make(app, **headers: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


def flatten(spans: list[dict]) -> list[dict]:
    return [s for span in spans for s in (span, *flatten(span["children"]))]


async def test_a_runs_trace_is_read_back_by_its_tenant_only(
    agents_dir, openai_server, app_factory, client_for
):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("Hello.", tokens_in=7, tokens_out=2))
    app = app_factory(auth="required")
    keys = await keys_of(app)
    acme = client_for(app, **{"x-api-key": (await keys.issue("acme", ["*"])).plaintext})
    globex = client_for(app, **{"x-api-key": (await keys.issue("globex", ["*"])).plaintext})
    admin_key = await keys.issue("ops", ["*"], role=Role.ADMIN)
    admin = client_for(app, **{"x-api-key": admin_key.plaintext})

    ran = (
        await acme.post("/v1/agents/helper/run", json={"query": "Hi", "session_id": "s9"})
    ).json()
    summary = ran["trace"]
    assert summary["trace_id"] == ran["run_id"].removeprefix("run_")
    assert summary["operations"]["chat"] == 1 and summary["operations"]["invoke_agent"] == 1

    got = await acme.get(f"/v1/traces/{summary['trace_id']}")
    assert got.status_code == 200, got.text
    document = got.json()
    assert (document["run_id"], document["agent"], document["session_id"]) == (
        ran["run_id"],
        "helper",
        "s9",
    )
    spans = flatten(document["spans"])
    assert len(spans) == summary["spans"] == document["span_count"]
    assert {s["trace_id"] for s in spans} == {summary["trace_id"]}
    [chat] = [s for s in spans if s["name"] == "chat scripted"]
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 7
    assert chat["duration_ms"] >= 0 and chat["end_time"] >= chat["start_time"]
    assert (await acme.get(f"/v1/traces/{ran['run_id']}")).json()["trace_id"] == summary["trace_id"]

    # another tenant: the same 404 as an unknown id, and nothing listed
    for client in (globex,):
        refused = await client.get(f"/v1/traces/{summary['trace_id']}")
        assert refused.status_code == 404
        assert (await client.get(f"/v1/traces/{ran['run_id']}")).status_code == 404
        assert (await client.get("/v1/traces")).json() == {"traces": []}
    listed = (
        await acme.get("/v1/traces", params={"agent": "helper", "status": "succeeded"})
    ).json()
    assert [t["trace_id"] for t in listed["traces"]] == [summary["trace_id"]]
    assert (await acme.get("/v1/traces", params={"status": "failed"})).json() == {"traces": []}
    later = (await acme.get("/v1/traces", params={"from": "2999-01-01"})).json()
    assert later == {"traces": []}
    # an admin reads another tenant's traces by naming it
    assert (await admin.get("/v1/traces", params={"tenant": "acme"})).json()["traces"]
    assert (await admin.get(f"/v1/traces/{summary['trace_id']}")).status_code == 200

    for params, field in (
        ({"limit": 0}, "limit"),
        ({"status": "done"}, "status"),
        ({"from": "yesterday"}, "from"),
    ):
        bad = await acme.get("/v1/traces", params=params)
        assert bad.status_code == 422 and field in bad.text, bad.text


async def test_a_run_joins_the_callers_traceparent(
    agents_dir, openai_server, app_factory, client_for
):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("Hello."), Reply("Again."))
    client = client_for(app_factory())
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

    ran = await client.post(
        "/v1/agents/helper/run",
        json={"query": "Hi"},
        headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
    )

    summary = ran.json()["trace"]
    assert (summary["trace_id"], summary["parent_span_id"]) == (caller_trace, caller_span)
    document = (await client.get(f"/v1/traces/{caller_trace}")).json()
    [root] = document["spans"]  # the caller's span is not kept: the run's root is the top
    assert (root["name"], root["parent_span_id"]) == ("invoke_agent helper", caller_span)
    # a malformed header starts a trace of the run's own, never an error
    again = await client.post(
        "/v1/agents/helper/run", json={"query": "Hi"}, headers={"traceparent": "00-zz-1-01"}
    )
    assert again.status_code == 200
    assert again.json()["trace"]["trace_id"] == again.json()["run_id"].removeprefix("run_")

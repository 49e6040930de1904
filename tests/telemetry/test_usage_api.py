"""``GET /v1/usage`` and ``GET /v1/metrics`` after real runs: two agents (one calling the other
as a child run), two tenants, a scripted priced model over loopback with known token counts,
the SQLite store. The sums equal the runs' own ``usage``, per group; each tenant sees its own;
bad parameters are a 422 naming the parameter.

Fixtures come from the channels suite (apps over a temporary agents folder)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from astromesh.auth import Role
from astromesh.stores.sqlite import SQLiteBackend
from tests.channels.conftest import agents_dir, client_for, keys_of, make_app  # noqa: F401
from tests.support.agents import PRICED_MODEL, write_agent, write_priced_provider
from tests.support.model_servers import Reply

BOSS_TOOLS = [{"type": "agent", "name": "ask_helper", "agent": "helper"}]


def _runs_in(body: dict[str, Any]) -> list[str]:
    """The child run ids a run response's steps name."""
    return [s["data"]["child_run_id"] for s in body["steps"] if "child_run_id" in s["data"]]


@pytest.fixture
async def world(agents_dir: Path, make_app, client_for, openai_server, tmp_path: Path):  # noqa: F811
    """The app, a client per key (acme and globex users, an ops admin), and every run's
    usage as its response told it: ``(tenant, agent, usage)``."""
    write_agent(agents_dir, "helper", model=PRICED_MODEL)
    write_agent(agents_dir, "boss", model=PRICED_MODEL, tools=BOSS_TOOLS)
    write_priced_provider(agents_dir, openai_server.url)
    app = make_app(state=SQLiteBackend(tmp_path / "state.db"))
    keys = await keys_of(app)
    clients: dict[str, httpx.AsyncClient] = {}
    for name, tenant, role in (
        ("acme", "acme", Role.USER),
        ("globex", "globex", Role.USER),
        ("admin", "ops", Role.ADMIN),
    ):
        issued = await keys.issue(tenant, ["*"], role=role)
        clients[name] = client_for(app, **{"x-api-key": issued.plaintext})
    helper_only = await keys.issue("acme", ["helper"], role=Role.USER)
    clients["acme-helper-only"] = client_for(app, **{"x-api-key": helper_only.plaintext})

    runs: list[tuple[str, str, dict[str, Any]]] = []

    async def run(who: str, agent: str, query: str) -> dict[str, Any]:
        answered = await clients[who].post(f"/v1/agents/{agent}/run", json={"query": query})
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["status"] == "succeeded", body
        runs.append((who, agent, body["usage"]))
        for child_id in _runs_in(body):
            child = (await clients[who].get(f"/v1/runs/{child_id}")).json()
            runs.append((who, child["agent"], child["usage"]))
        return body

    openai_server.push(Reply("one", tokens_in=40, tokens_out=10))
    await run("acme", "helper", "first")
    openai_server.push(Reply("two", tokens_in=30, tokens_out=5))
    await run("acme", "helper", "second")
    openai_server.push(
        Reply(tool_calls=[("ask_helper", {"query": "sub"})], tokens_in=50, tokens_out=8),
        Reply("child answer", tokens_in=20, tokens_out=4),  # the helper, as a child run
        Reply("boss answer", tokens_in=60, tokens_out=12),
    )
    boss = await run("acme", "boss", "delegate")
    assert len(_runs_in(boss)) == 1
    openai_server.push(Reply("theirs", tokens_in=7, tokens_out=3))
    await run("globex", "helper", "elsewhere")
    return clients, runs


def _expected(runs, tenant: str, key) -> dict[str, dict[str, float]]:
    sums: dict[str, dict[str, float]] = defaultdict(
        lambda: {"runs": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
    )
    for who, agent, usage in runs:
        if who != tenant:
            continue
        group = sums[key(agent, usage)]
        group["runs"] += 1
        group["tokens_in"] += usage["tokens_in"]
        group["tokens_out"] += usage["tokens_out"]
        group["cost_usd"] += usage["cost"]
    return dict(sums)


def _got(body: dict[str, Any], name: str) -> dict[str, dict[str, float]]:
    return {
        g[name]: {k: g[k] for k in ("runs", "tokens_in", "tokens_out", "cost_usd")}
        for g in body["groups"]
    }


def _approx(sums: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    return {k: {m: pytest.approx(v) for m, v in g.items()} for k, g in sums.items()}


async def test_usage_sums_equal_the_runs_usage_per_agent_model_and_day(world) -> None:
    clients, runs = world
    acme = clients["acme"]

    by_agent = await acme.get("/v1/usage", params={"group_by": "agent"})
    assert by_agent.status_code == 200, by_agent.text
    expected = _expected(runs, "acme", lambda agent, _usage: agent)
    assert expected["helper"]["runs"] == 3  # two runs and the boss's child run
    assert expected["boss"]["tokens_in"] == 110  # its own two calls, not the child's
    assert _got(by_agent.json(), "agent") == _approx(expected)

    by_model = (await acme.get("/v1/usage", params={"group_by": "model"})).json()
    assert _got(by_model, "model") == _approx(
        _expected(runs, "acme", lambda _agent, _usage: "house/scripted")
    )

    by_day = (await acme.get("/v1/usage/", params={"group_by": "day"})).json()
    (day,) = _got(by_day, "day")
    assert _got(by_day, "day") == _approx(_expected(runs, "acme", lambda *_: day))
    total = by_day["total"]
    assert (total["runs"], total["tokens_in"], total["tokens_out"]) == (4, 200, 39)
    assert total["cost_usd"] == pytest.approx(sum(u["cost"] for w, _, u in runs if w == "acme"))

    one_agent = (await acme.get("/v1/usage", params={"agent": "boss"})).json()
    assert one_agent["total"]["runs"] == 1 and one_agent["groups"] == []


async def test_each_tenant_sees_its_own_and_only_an_admin_names_another(world) -> None:
    clients, runs = world

    theirs = (await clients["globex"].get("/v1/usage", params={"group_by": "agent"})).json()
    assert theirs["tenant"] == "globex"
    assert _got(theirs, "agent") == _approx(_expected(runs, "globex", lambda a, _u: a))

    refused = await clients["acme"].get("/v1/usage", params={"tenant": "globex"})
    assert refused.status_code == 403 and "tenant" in refused.json()["detail"]

    as_admin = (await clients["admin"].get("/v1/usage", params={"tenant": "acme"})).json()
    assert as_admin["tenant"] == "acme" and as_admin["total"]["runs"] == 4
    own = (await clients["admin"].get("/v1/usage")).json()
    assert own["tenant"] == "ops" and own["total"]["runs"] == 0


async def test_a_key_limited_to_some_agents_sees_their_spending_only(world) -> None:
    clients, _runs = world
    limited = clients["acme-helper-only"]

    seen = (await limited.get("/v1/usage", params={"group_by": "agent"})).json()
    assert [g["agent"] for g in seen["groups"]] == ["helper"]
    assert seen["total"]["runs"] == 3
    assert (await limited.get("/v1/usage", params={"agent": "boss"})).status_code == 403
    counted = (await limited.get("/v1/metrics")).json()["counters"]
    assert counted["runs_total"] == 3 and not any("boss" in name for name in counted)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"group_by": "week"}, "group_by"),
        ({"from": "2026-05-01T25:00"}, "from"),
    ],
)
async def test_bad_parameters_are_a_422_naming_the_parameter(world, params, named) -> None:
    clients, _runs = world
    answered = await clients["acme"].get("/v1/usage", params=params)
    assert answered.status_code == 422, answered.text
    assert {f["field"] for f in answered.json()["error"]["fields"]} == {f"query.{named}"}
    assert f"query.{named}:" in answered.json()["detail"]


async def test_windows_that_miss_the_runs_hold_none(world) -> None:
    clients, _runs = world
    for params in (
        {"to": "2020-01-01"},  # before the runs
        {"from": "2026-05-02", "to": "2026-05-01"},  # ends before it starts: empty
        {"from": "9999-12-31", "to": "9999-12-31"},  # at the calendar's end
        {"to": "0001-01-01T00:00:00+05:00"},  # before its start
    ):
        answered = await clients["acme"].get("/v1/usage", params=params)
        assert answered.status_code == 200, (params, answered.text)
        assert answered.json()["total"]["runs"] == 0
    today = (await clients["acme"].get("/v1/usage", params={"group_by": "day"})).json()
    (day,) = [g["day"] for g in today["groups"]]
    whole_day = await clients["acme"].get("/v1/usage", params={"from": day, "to": day})
    assert whole_day.json()["total"]["runs"] == 4  # a date as `to` includes that day


# -- upstream's /v1/metrics/ -------------------------------------------------------------------


def upstream_cost_rows(data: dict) -> list[tuple[str, str]]:
    """Upstream's ``print_cost_table`` (astromesh_cli/output.py), its rows instead of a table."""
    rows: list[tuple[str, str]] = []
    histograms = data.get("histograms", {})
    counters = data.get("counters", {})
    for name, value in counters.items():
        if "cost" in name.lower():
            rows.append((name, f"${value:.4f}" if isinstance(value, float) else str(value)))
    for name, stats in histograms.items():
        if "cost" in name.lower():
            rows.append((f"{name} (count)", str(stats.get("count", 0))))
            rows.append((f"{name} (total)", f"${stats.get('sum', 0):.4f}"))
            rows.append((f"{name} (avg)", f"${stats.get('avg', 0):.4f}"))
    return rows


def upstream_metrics_rows(data: dict) -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
    """Upstream's ``print_metrics_table``: counter rows and histogram rows."""
    counters = [(name, str(value)) for name, value in data.get("counters", {}).items()]
    histograms = [
        (
            name,
            str(stats.get("count", 0)),
            f"{stats.get('avg', 0):.2f}",
            str(stats.get("min", 0)),
            str(stats.get("max", 0)),
        )
        for name, stats in data.get("histograms", {}).items()
    ]
    return counters, histograms


async def test_metrics_read_as_upstreams_client_reads_them(world) -> None:
    clients, runs = world
    answered = await clients["acme"].get("/v1/metrics/")  # upstream's client sends the slash
    assert answered.status_code == 200, answered.text
    data = answered.json()

    acme_cost = sum(u["cost"] for w, _, u in runs if w == "acme")
    cost_rows = dict(upstream_cost_rows(data))
    assert cost_rows["cost_usd_total"] == f"${acme_cost:.4f}"
    assert cost_rows["run_cost_usd (count)"] == "4"
    assert cost_rows["run_cost_usd (total)"] == f"${acme_cost:.4f}"
    assert cost_rows['cost_usd_total{agent="boss",status="succeeded"}'] == "${:.4f}".format(
        sum(u["cost"] for w, a, u in runs if w == "acme" and a == "boss")
    )
    counters, histograms = upstream_metrics_rows(data)
    assert ("runs_total", "4") in counters
    assert ("tokens_input_total", "200") in counters
    assert {row[0] for row in histograms} == {"run_cost_usd", "run_tokens"}

    other = (await clients["globex"].get("/v1/metrics")).json()
    assert other["counters"]["runs_total"] == 1

"""Upstream's builtins under the registration policy: what a posted document gets by default,
what it is refused (a 422 naming the field and the rule), and what its tools still cannot do
at run time (the grants enforced where they connect)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.conftest import HostileApps, registered
from tests.security.test_registration_policy import refusals
from tests.support.canaries import LoopbackListener
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.postgres_roles import reader_role

NETWORK = ["http_request", "web_scrape", "send_webhook", "graphql_query"]


def _args(name: str, url: str) -> dict[str, object]:
    if name == "http_request":
        return {"method": "POST", "url": url, "body": {"x": 1}}
    if name == "send_webhook":
        return {"url": url, "payload": {"x": 1}}
    if name == "graphql_query":
        return {"endpoint": url, "query": "{ me { id } }"}
    return {"url": url}


async def test_upstream_builtins_granted_by_default_register(hostile_app: HostileApps) -> None:
    tools = [
        {"name": name, "type": "builtin"} for name in ("datetime_now", "get_current_time", *NETWORK)
    ]
    response = await hostile_app().post("/v1/agents", json=registered(tools=tools))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("name", NETWORK)
@pytest.mark.parametrize("key", ["allow_private_network", "allow_localhost"])
async def test_private_network_flags_are_refused(
    hostile_app: HostileApps, name: str, key: str
) -> None:
    tool = {"name": name, "type": "builtin", "config": {key: True}}
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.allow_private_network" in found[f"spec.tools[0].config.{key}"]


async def test_an_operator_may_allow_private_networks(hostile_app: HostileApps) -> None:
    tool = {"name": "http_request", "type": "builtin", "config": {"allow_localhost": True}}
    client = hostile_app({"ASTROMESH_REGISTRATION_PRIVATE_NETWORK": "true"})
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201


@pytest.mark.parametrize("name", NETWORK)
async def test_network_builtins_never_reach_loopback_or_metadata(
    hostile_app: HostileApps,
    listener: LoopbackListener,
    openai_server: ScriptedOpenAIServer,
    name: str,
) -> None:
    client = hostile_app()
    tool = {"name": name, "type": "builtin"}
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201
    targets = [
        f"{listener.url}/admin",
        f"http://localhost:{listener.port}/admin",
        f"http://[::ffff:127.0.0.1]:{listener.port}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
    ]
    openai_server.push(*(Reply(tool_calls=[(name, _args(name, url))]) for url in targets))
    openai_server.push(Reply("done"))
    run = (await client.post("/v1/agents/posted/run", json={"query": "go"})).json()
    calls = [s for s in run["steps"] if s["type"] == "tool_call"]
    assert len(calls) == len(targets)
    assert [c["data"]["ok"] for c in calls] == [False] * len(targets), calls
    assert listener.connections == 0


async def test_network_hosts_narrow_the_network_builtins(
    hostile_app: HostileApps, openai_server: ScriptedOpenAIServer, listener: LoopbackListener
) -> None:
    env = {
        "ASTROMESH_REGISTRATION_NETWORK_HOSTS": "api.example.com",
        "ASTROMESH_REGISTRATION_PRIVATE_NETWORK": "true",
    }
    client = hostile_app(env)
    tool = {"name": "http_request", "type": "builtin", "config": {"allow_private_network": True}}
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201
    openai_server.push(
        Reply(tool_calls=[("http_request", _args("http_request", listener.url))]), Reply("done")
    )
    run = (await client.post("/v1/agents/posted/run", json={"query": "go"})).json()
    [call] = [s for s in run["steps"] if s["type"] == "tool_call"]
    assert not call["data"]["ok"] and "allowed hosts" in str(call)
    assert listener.connections == 0


# -- write_file ------------------------------------------------------------------------------


async def test_write_file_is_not_granted_by_default(hostile_app: HostileApps) -> None:
    tool = {"name": "write_file", "type": "builtin", "config": {"root": "/tmp"}}
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.builtins" in found["spec.tools[0].name"]


@pytest.mark.parametrize("root", ["/etc", "/proc/self", "/", "OTHER", "AGENTS", "AGENTS/sub"])
async def test_write_file_roots_outside_the_policy_are_refused(
    hostile_app: HostileApps, tmp_path: Path, root: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = {
        "ASTROMESH_REGISTRATION_BUILTINS": "write_file",
        # the agents folder listed on purpose: still never writable by a registered agent
        "ASTROMESH_REGISTRATION_FILE_ROOTS": f"{out},{hostile_app.agents_dir}",
    }
    root = root.replace("OTHER", str(tmp_path)).replace("AGENTS", str(hostile_app.agents_dir))
    for config in ({"root": root}, {"allowed_paths": [root]}):
        tool = {"name": "write_file", "type": "builtin", "config": config}
        found = refusals(await hostile_app(env).post("/v1/agents", json=registered(tools=[tool])))
        [field] = [f for f in found if f.startswith("spec.tools[0].config")]
        assert "registration.file_roots" in found[field]


async def test_write_file_under_a_granted_root_cannot_escape_it(
    hostile_app: HostileApps, tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "up").symlink_to(tmp_path)
    canary = tmp_path / "canary.txt"
    env = {
        "ASTROMESH_REGISTRATION_BUILTINS": "write_file",
        "ASTROMESH_REGISTRATION_FILE_ROOTS": str(out),
    }
    client = hostile_app(env)
    tool = {"name": "write_file", "type": "builtin", "config": {"root": str(out)}}
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201
    attempts = [
        "ok.txt",
        "../canary.txt",
        "up/canary.txt",
        str(canary),
        f"../agents/{canary.name}",
    ]
    openai_server.push(
        *(Reply(tool_calls=[("write_file", {"path": p, "content": "x"})]) for p in attempts),
        Reply("done"),
    )
    run = (await client.post("/v1/agents/posted/run", json={"query": "write"})).json()
    results = [s["data"]["ok"] for s in run["steps"] if s["type"] == "tool_call"]
    assert results == [True, False, False, False, False], run["steps"]
    assert (out / "ok.txt").read_text() == "x"
    assert not canary.exists()
    assert not (hostile_app.agents_dir / canary.name).exists()


# -- sql_query -------------------------------------------------------------------------------


async def test_sql_query_needs_the_builtin_and_a_listed_dsn(
    hostile_app: HostileApps, postgres_schema: str, openai_server: ScriptedOpenAIServer
) -> None:
    config = {"connection_string": postgres_schema}
    tool = {"name": "sql_query", "type": "builtin", "config": config}
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.builtins" in found["spec.tools[0].name"]

    granted = {"ASTROMESH_REGISTRATION_BUILTINS": "sql_query"}
    # the server's own state database, unlisted: refused by name of the rule
    state = {**granted, "ASTROMESH_POSTGRES_DSN": postgres_schema}
    found = refusals(await hostile_app(state).post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.sql_dsns" in found["spec.tools[0].config.connection_string"]
    dsn_alias = {"name": "sql_query", "type": "builtin", "config": {"dsn": "postgresql://x/y"}}
    posted = await hostile_app(granted).post("/v1/agents", json=registered(tools=[dsn_alias]))
    found = refusals(posted)
    assert "registration.sql_dsns" in found["spec.tools[0].config.dsn"]

    with reader_role(postgres_schema) as reader:
        listed = {**granted, "ASTROMESH_REGISTRATION_SQL_DSNS": f"{reader},{postgres_schema}"}
        client = hostile_app(listed)
        readers = {**tool, "config": {"connection_string": reader}}
        for posted_tool in (readers, tool):
            document = registered(tools=[posted_tool])
            assert (await client.post("/v1/agents", json=document)).status_code in (200, 201)
            openai_server.push(
                Reply(
                    tool_calls=[
                        (posted_tool["name"], {"query": "SELECT 40 + %s AS n", "params": [2]})
                    ]
                ),
                Reply(tool_calls=[(posted_tool["name"], {"query": "CREATE TABLE owned (x int)"})]),
                Reply("done"),
            )
            run = (await client.post("/v1/agents/posted/run", json={"query": "q"})).json()
            calls = [s for s in run["steps"] if s["type"] == "tool_call"]
            if posted_tool is readers:
                assert [c["data"]["ok"] for c in calls] == [True, False], calls
                assert "read-only" in str(calls[1])
            else:  # a listed DSN still: READ ONLY does not stop a superuser's COPY TO PROGRAM
                assert [c["data"]["ok"] for c in calls] == [False, False], calls
                assert "is a superuser" in str(calls[0])
            assert (await client.delete("/v1/agents/posted")).status_code == 200


# -- send_slack / send_email -----------------------------------------------------------------


async def test_notifications_use_only_the_operators_accounts(
    hostile_app: HostileApps, listener: LoopbackListener
) -> None:
    found = refusals(
        await hostile_app().post(
            "/v1/agents", json=registered(tools=[{"name": "send_email", "type": "builtin"}])
        )
    )
    assert "registration.builtins" in found["spec.tools[0].name"]
    client = hostile_app({"ASTROMESH_REGISTRATION_BUILTINS": "send_email,send_slack"})
    email = {"name": "send_email", "type": "builtin", "config": {"smtp_host": "127.0.0.1"}}
    slack = {
        "name": "send_slack",
        "type": "builtin",
        "config": {"webhook_url": f"{listener.url}/hook", "allow_localhost": True},
    }
    found = refusals(await client.post("/v1/agents", json=registered(tools=[email, slack])))
    assert "policy: never" in found["spec.tools[0].config.smtp_host"]
    assert "loopback" in found["spec.tools[1].config.webhook_url"]
    assert "allow_private_network" in found["spec.tools[1].config.allow_localhost"]
    assert listener.connections == 0


# -- web_search / wikipedia ------------------------------------------------------------------


async def test_search_endpoints_go_through_the_guard(
    hostile_app: HostileApps, listener: LoopbackListener
) -> None:
    client = hostile_app({"ASTROMESH_REGISTRATION_BUILTINS": "web_search,wikipedia"})
    tools = [
        {"name": "wikipedia", "type": "builtin", "config": {"endpoint": listener.url}},
        {"name": "web_search", "type": "builtin", "config": {"endpoint": "http://169.254.169.254"}},
    ]
    found = refusals(await client.post("/v1/agents", json=registered(tools=tools)))
    assert "loopback" in found["spec.tools[0].config.endpoint"]
    assert "metadata" in found["spec.tools[1].config.endpoint"]
    plain = [{"name": "wikipedia", "type": "builtin"}]
    assert (await hostile_app().post("/v1/agents", json=registered(tools=plain))).status_code == 201


async def test_rag_ingest_writes_a_shared_index_so_it_is_not_granted_by_default(
    hostile_app: HostileApps,
) -> None:
    tool = {"name": "rag_ingest", "type": "builtin"}
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.builtins" in found["spec.tools[0].name"]


async def test_read_file_allowed_paths_are_checked_like_root(
    hostile_app: HostileApps, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    env = {
        "ASTROMESH_REGISTRATION_BUILTINS": "read_file",
        "ASTROMESH_REGISTRATION_FILE_ROOTS": str(docs),
    }
    tool = {"name": "read_file", "type": "builtin", "config": {"allowed_paths": ["/proc/self"]}}
    found = refusals(await hostile_app(env).post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.file_roots" in found["spec.tools[0].config.allowed_paths[0]"]

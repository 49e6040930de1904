"""File agents that validate but cannot run here are refused at load, not on every run.

A webhook tool whose URL is an IP literal the SSRF guard refuses, a python tool whose module
does not import, an agent tool naming a RAG pipeline that does not exist: each agent is
skipped with its file, line and field; ``GET /v1/agents`` lists them as ``status: draft``
with their error (an admin also sees file and line under ``skipped``); every way of running
one answers ``409 agent_unrunnable`` naming the file, never a 500; ``astromesh validate``
reports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from astromesh.auth import Role
from astromesh.runtime import AgentRuntime
from tests.channels.conftest import AppFactory
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    PlatformServer,
    signed,
    wa_text,
    whatsapp_delivery,
    whatsapp_env,
)
from tests.support.model_servers import ScriptedOpenAIServer
from tests.support.tenants import caller
from tests.test_cli import astromesh

BROKEN: dict[str, dict[str, Any]] = {
    # 127.0.0.1 is refused for a file agent's webhook unless allow_private_network is set;
    # nothing is ever sent there (the tool is refused when the agent is built).
    "hook": {"tools": [{"name": "notify", "type": "webhook", "url": "http://127.0.0.1:9/h"}]},
    "pytool": {
        "tools": [{"name": "nothere", "type": "python", "handler": "no_such_module_xyz:run"}]
    },
    "ragless": {"tools": [{"name": "search", "type": "rag", "pipeline": "nowhere"}]},
}


def write_folder(folder: Path, model_url: str) -> None:
    write_agent(folder, "good", model=primary(model_url))
    for name, spec in BROKEN.items():
        write_agent(folder, name, model=primary(model_url), **spec)


def assert_refused(response: httpx.Response, name: str) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "agent_unrunnable"
    assert f"agent {name!r} cannot run" in error["message"]
    assert f"{name}.agent.yaml:" in error["message"] and "spec.tools.0" in error["message"]


async def test_the_listing_shows_runnable_agents_and_an_admin_the_skipped_ones(
    make_app: AppFactory, agents_dir: Path, client_for, openai_server: ScriptedOpenAIServer
):
    write_folder(agents_dir, openai_server.url)
    app = make_app()
    client = client_for(app)

    admin_view = (await client.get("/v1/agents")).json()  # an open server's caller is admin

    runnable = [a["name"] for a in admin_view["agents"] if a["status"] != "draft"]
    drafts = {a["name"]: a["error"] for a in admin_view["agents"] if a["status"] == "draft"}
    assert runnable == ["good"]
    assert sorted(drafts) == sorted(BROKEN)  # upstream's draft listing, with why
    assert "allow_private_network" in drafts["hook"] and "hook.agent.yaml" not in drafts["hook"]
    skipped = {s["name"]: s for s in admin_view["skipped"]}
    assert sorted(skipped) == sorted(BROKEN)
    hook = skipped["hook"]
    assert hook["file"].endswith("hook.agent.yaml") and hook["field"] == "spec.tools.0"
    assert isinstance(hook["line"], int) and hook["line"] > 1
    assert "127.0.0.1" in hook["message"] and "allow_private_network" in hook["message"]
    assert "no_such_module_xyz" in skipped["pytool"]["message"]
    assert "nowhere" in skipped["ragless"]["message"]

    user = await caller(app, client, "acme", Role.USER)
    seen = (await user.get("/v1/agents")).json()
    assert [a["name"] for a in seen["agents"] if a["status"] != "draft"] == ["good"]
    assert seen["skipped"] == []
    health = (await client.get("/v1/health")).json()
    assert health["agents"] == 1


@pytest.mark.parametrize("name", sorted(BROKEN))
async def test_every_way_of_running_one_is_a_409_naming_why(
    name: str,
    make_app: AppFactory,
    agents_dir: Path,
    client_for,
    openai_server: ScriptedOpenAIServer,
):
    """Asked before any listing (the agent is found unrunnable on this first request) and
    again after it: the same clear refusal, and no model call."""
    write_folder(agents_dir, openai_server.url)
    client = client_for(make_app())
    body = {"query": "hello"}

    assert_refused(await client.post(f"/v1/agents/{name}/run", json=body), name)
    assert_refused(await client.post(f"/v1/agents/{name}/run?mode=async", json=body), name)
    assert_refused(await client.post(f"/v1/agents/{name}/stream", json=body), name)
    await client.get("/v1/agents")
    assert_refused(await client.post(f"/v1/agents/{name}/run", json=body), name)
    described = await client.get(f"/v1/agents/{name}")
    assert described.status_code == 200  # its document can still be read, with why
    assert described.json()["unrunnable"]["field"] == "spec.tools.0"
    assert openai_server.requests == []


async def test_a_messaging_channel_on_an_unrunnable_agent_answers_the_notice(
    make_app: AppFactory, agents_dir: Path, client_for, openai_server: ScriptedOpenAIServer
):
    from astromesh.channels.messaging.inbox import FAILURE_NOTICE

    write_folder(agents_dir, openai_server.url)
    with PlatformServer() as graph:
        app = make_app(env=whatsapp_env(graph.url, WHATSAPP_DEFAULT_AGENT="hook"))
        client = client_for(app)
        payload, headers = signed(whatsapp_delivery(wa_text("hi", message_id="wamid.U1")))

        response = await client.post(
            "/v1/channels/whatsapp/webhook", content=payload, headers=headers
        )
        await app.state.channel_hub.drain(timeout=10)

        assert response.status_code == 200
        assert graph.wait_for(1) and graph.texts() == [FAILURE_NOTICE]


async def test_the_runtime_skips_them_and_runs_the_rest(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
):
    write_folder(tmp_path / "agents", openai_server.url)
    async with AgentRuntime(tmp_path / "agents", offline=True) as runtime:
        skipped = await runtime.check_agents()

        assert sorted(skipped) == sorted(BROKEN) and runtime.agent_names() == ["good"]
        assert str(skipped["pytool"]).startswith(str(tmp_path / "agents" / "pytool.agent.yaml"))
    assert not (tmp_path / ".astromesh").exists()  # offline: no store was created


def test_validate_reports_them_as_errors(tmp_path: Path):
    write_folder(tmp_path, "http://127.0.0.1:9/v1")

    result = astromesh("validate", str(tmp_path))

    assert result.returncode == 1, result.stdout
    for name in BROKEN:
        assert f"error: {tmp_path / name}.agent.yaml:" in result.stderr
    assert "spec.tools.0: cannot run here:" in result.stderr
    assert "1 agent(s)" in result.stderr and "Traceback" not in result.stderr
    assert {p.name for p in tmp_path.iterdir()} == {f"{n}.agent.yaml" for n in ["good", *BROKEN]}


async def test_a_registered_agent_the_policy_no_longer_allows_is_a_409(
    make_app: AppFactory,
    agents_dir: Path,
    client_for,
    openai_server: ScriptedOpenAIServer,
    tmp_path: Path,
):
    """Registered with a python tool the policy allowed; an instance whose policy no longer
    allows that module (tightened on upgrade) refuses to run it with the reason, never 500."""
    from astromesh.stores.sqlite import SQLiteBackend
    from tests.support.agents import agent_document, python_tool

    state = SQLiteBackend(tmp_path / "shared.db")  # the registry both instances read
    document = agent_document(
        "adder", model=primary(openai_server.url), tools=[python_tool("add", "add")]
    )
    before = client_for(make_app(state=state))
    assert (await before.post("/v1/agents", json=document)).status_code == 201

    after = client_for(make_app(state=state, registered_tool_modules=()))
    response = await after.post("/v1/agents/adder/run", json={"query": "1+1"})

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "agent_unrunnable" and "no longer validates" in error["message"]
    listed = (await after.get("/v1/agents")).json()
    [adder] = [a for a in listed["agents"] if a["name"] == "adder"]
    assert adder["status"] == "draft" and "no longer validates" in adder["error"]
    assert openai_server.requests == []
    await state.close()

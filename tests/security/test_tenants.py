"""Registered agents belong to a tenant: another tenant's agent is a 404 like an unknown name,
two tenants may each have a ``support``, and a run stays in its tenant on every channel (REST
sync, async and stream, both WebSockets, messaging, Step Functions, child runs).

Each tenant's ``support`` talks to its own scripted model server, so which server answered
says whose agent ran. Stores are real: SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI

from astromesh.auth import Role
from astromesh.channels.aws.connections import MemoryRegistry
from astromesh.channels.aws.frames import Post
from astromesh.channels.aws.websocket import WebSocketGateway
from astromesh.runs.state import RunStatus
from astromesh.stores.base import StateBackend
from tests.channels.conftest import TEST_REGISTRATION_ENV, AppFactory, parse_sse, wait_for
from tests.support.agents import agent_document, primary, write_agent
from tests.support.messaging import PlatformServer, telegram_env, telegram_headers, telegram_update
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.tenants import STORES, Caller, caller, open_store, posted


@pytest.fixture(params=STORES)
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    async for backend in open_store(request, tmp_path):
        yield backend


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir()
    return folder


@pytest.fixture
async def make_app(agents_dir: Path) -> AsyncIterator[AppFactory]:
    factory = AppFactory(agents_dir)
    yield factory
    await factory.close()


@pytest.fixture
async def client_of() -> AsyncIterator[Any]:
    opened: list[httpx.AsyncClient] = []

    def make(app: FastAPI) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


@pytest.fixture
def server_b() -> Iterator[ScriptedOpenAIServer]:
    """Tenant B's model (``openai_server`` is tenant A's)."""
    with ScriptedOpenAIServer() as server:
        yield server


async def _register(who: Caller, document: dict[str, Any]) -> None:
    created = await who.post("/v1/agents", json=document)
    assert created.status_code == 201, created.text


async def test_another_tenants_agent_is_a_404_like_an_unknown_name(
    state, make_app, client_of, openai_server, server_b
):
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex", agents=("support", "nobody"))
    await _register(acme, posted(openai_server.url))
    takeover = posted(server_b.url)

    attempts = {
        "describe": lambda name: globex.get(f"/v1/agents/{name}"),
        "run": lambda name: globex.run(name),
        "run async": lambda name: globex.run(name, params={"mode": "async"}),
        "stream": lambda name: globex.post(f"/v1/agents/{name}/stream", json={"query": "q"}),
        "update": lambda name: globex.put(
            f"/v1/agents/{name}",
            json={**takeover, "metadata": {**takeover["metadata"], "name": name}},
        ),
        "pause": lambda name: globex.post(f"/v1/agents/{name}/pause"),
        "resume": lambda name: globex.post(f"/v1/agents/{name}/resume"),
        "deploy": lambda name: globex.post(f"/v1/agents/{name}/deploy"),
        "delete": lambda name: globex.delete(f"/v1/agents/{name}"),
        "history": lambda name: globex.get(f"/v1/memory/{name}/history/s"),
        "clear history": lambda name: globex.delete(f"/v1/memory/{name}/history/s"),
        "semantic": lambda name: globex.get(f"/v1/memory/{name}/semantic"),
    }
    for what, attempt in attempts.items():
        theirs, unknown = await attempt("support"), await attempt("nobody")
        assert theirs.status_code == 404, (what, theirs.text)
        # the same answer as for a name nobody uses: nothing confirms acme's agent exists
        assert theirs.json() == json.loads(unknown.text.replace("nobody", "support")), what
        assert "acme" not in theirs.text

    listing = (await globex.get("/v1/agents")).json()["agents"]
    tools = (await globex.get("/v1/tools")).json()["tools"]
    assert listing == [] and tools == []

    # acme's agent is untouched: revision 1, deployed, and it runs on acme's model
    mine = (await acme.get("/v1/agents/support")).json()
    assert (mine["revision"], mine["status"], mine["tenant"]) == (1, "deployed", "acme")
    assert mine["spec"]["model"]["primary"]["endpoint"] == openai_server.url
    openai_server.push(Reply("acme's answer"))
    answer = await acme.run("support")
    assert answer.status_code == 200 and answer.json()["answer"] == "acme's answer"
    assert server_b.requests == []


async def test_two_tenants_each_register_and_run_their_own_support(
    state, make_app, client_of, openai_server, server_b
):
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex")
    admin = await caller(app, client, "ops", Role.ADMIN)
    await _register(acme, posted(openai_server.url, display="Acme Support"))
    await _register(globex, posted(server_b.url, display="Globex Support"))
    again = await globex.post("/v1/agents", json=posted(server_b.url))
    assert again.status_code == 409  # unique within a tenant

    openai_server.push(Reply("from acme"), Reply("acme again"))
    server_b.push(Reply("from globex"))
    assert (await acme.run("support")).json()["answer"] == "from acme"
    assert (await globex.run("support")).json()["answer"] == "from globex"
    assert "Acme Support" in openai_server.requests[0]["messages"][0]["content"]
    assert "Globex Support" in server_b.requests[0]["messages"][0]["content"]

    # globex changes, pauses and deletes its own support; acme's never moves
    updated = await globex.put("/v1/agents/support", json=posted(server_b.url, display="Globex v2"))
    assert updated.json()["revision"] == 2
    assert (await globex.post("/v1/agents/support/pause")).json()["status"] == "paused"
    assert (await globex.run("support")).status_code == 409
    assert (await acme.run("support")).json()["answer"] == "acme again"
    assert (await globex.delete("/v1/agents/support")).status_code == 200
    acme_view = (await acme.get("/v1/agents/support")).json()
    assert (acme_view["revision"], acme_view["status"]) == (1, "deployed")

    listings = {
        who.tenant: [
            (a["name"], a["tenant"]) for a in (await who.get("/v1/agents")).json()["agents"]
        ]
        for who in (acme, globex, admin)
    }
    assert listings == {"acme": [("support", "acme")], "globex": [], "ops": [("support", "acme")]}


async def test_file_agents_are_every_tenants_and_an_admin_lists_every_tenant(
    state, agents_dir, make_app, client_of, openai_server, server_b
):
    write_agent(agents_dir, "faq", model=primary(openai_server.url))
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex")
    admin = await caller(app, client, "ops", Role.ADMIN)
    await _register(acme, posted(openai_server.url))
    await _register(globex, posted(server_b.url))

    taken = await globex.post("/v1/agents", json=posted(server_b.url, "faq"))
    assert taken.status_code == 409 and "read-only" in taken.json()["error"]["message"]

    def names(response: httpx.Response) -> list[tuple[str, str | None, str]]:
        return [(a["name"], a["tenant"], a["origin"]) for a in response.json()["agents"]]

    assert names(await acme.get("/v1/agents")) == [
        ("faq", None, "file"),
        ("support", "acme", "registered"),
    ]
    assert names(await admin.get("/v1/agents")) == [
        ("faq", None, "file"),
        ("support", "acme", "registered"),
        ("support", "globex", "registered"),
    ]
    assert names(await admin.get("/v1/agents", params={"tenant": "globex"})) == [
        ("faq", None, "file"),
        ("support", "globex", "registered"),
    ]
    tools = await admin.get("/v1/tools")
    assert tools.status_code == 200

    # an admin acts in a tenant it names: pauses globex's support, not acme's
    paused = await admin.post("/v1/agents/support/pause", params={"tenant": "globex"})
    assert paused.status_code == 200
    assert (await globex.get("/v1/agents/support")).json()["status"] == "paused"
    assert (await acme.get("/v1/agents/support")).json()["status"] == "deployed"
    # ...and runs there, the run belonging to that tenant
    openai_server.push(Reply("acme's, run by ops"))
    run = await admin.run("support", params={"tenant": "acme"})
    assert run.json()["answer"] == "acme's, run by ops"
    assert (await acme.get(f"/v1/runs/{run.json()['run_id']}")).status_code == 200
    assert (await globex.get(f"/v1/runs/{run.json()['run_id']}")).status_code == 404


async def test_runs_streams_async_runs_and_memory_stay_in_the_tenant(
    state, make_app, client_of, openai_server, server_b
):
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex")
    await _register(acme, posted(openai_server.url))
    await _register(globex, posted(server_b.url))
    openai_server.push(Reply("acme streamed"), Reply("acme in the background"))
    server_b.push(Reply("globex streamed"))

    streamed = await acme.post("/v1/agents/support/stream", json={"query": "q", "session_id": "s"})
    [(_, done)] = [(e, d) for e, d in parse_sse(streamed.text) if e == "done"]
    assert done["answer"] == "acme streamed"
    other = await globex.post("/v1/agents/support/stream", json={"query": "q", "session_id": "s"})
    assert next(d for e, d in parse_sse(other.text) if e == "done")["answer"] == "globex streamed"

    accepted = await acme.run("support", params={"mode": "async"})
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]

    async def finished() -> dict[str, Any] | None:
        run = (await acme.get(f"/v1/runs/{run_id}")).json()
        return run if run["status"] != "running" else None

    run = await wait_for(finished)
    assert run["answer"] == "acme in the background"
    assert (await globex.get(f"/v1/runs/{run_id}")).status_code == 404
    assert (await globex.post(f"/v1/runs/{run_id}/cancel")).status_code == 404
    stored = await (await app.state.services.runtime.state()).runs.get(run_id)
    assert stored.tenant == "acme"

    acme_history = (await acme.get("/v1/memory/support/history/s")).json()["history"]
    globex_history = (await globex.get("/v1/memory/support/history/s")).json()["history"]
    assert [m["content"] for m in acme_history] == ["q", "acme streamed"]
    assert [m["content"] for m in globex_history] == ["q", "globex streamed"]


async def _serve(app: FastAPI) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}", server, task


async def test_the_local_websocket_runs_the_keys_tenants_agent(
    state, make_app, client_of, openai_server, server_b
):
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex")
    await _register(acme, posted(openai_server.url))
    base, server, task = await _serve(app)
    try:
        url = f"{base}/v1/ws/agent/support"
        async with websockets.connect(f"{url}?api_key={globex.key}") as socket:
            refused = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert refused["code"] == "not_found"
            await asyncio.wait_for(socket.wait_closed(), 10)
            assert socket.close_code == 4404

        openai_server.push(Reply("over the socket"))
        async with websockets.connect(f"{url}?api_key={acme.key}") as socket:
            await socket.send(json.dumps({"query": "hello"}))
            while (frame := json.loads(await asyncio.wait_for(socket.recv(), 10)))[
                "type"
            ] != "done":
                pass
        assert frame["answer"] == "over the socket"
        stored = await (await app.state.services.runtime.state()).runs.get(frame["run_id"])
        assert stored.tenant == "acme"
        assert server_b.requests == []
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _ws_event(connection: str, *, key: str | None = None, **query: str) -> dict[str, Any]:
    return {
        "requestContext": {"connectionId": connection, "domainName": "ws.test", "stage": "dev"},
        "headers": {"x-api-key": key} if key else {},
        "queryStringParameters": query or None,
    }


async def test_the_aws_websocket_runs_the_connections_tenants_agent(
    state, make_app, client_of, openai_server, server_b
):
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex")
    await _register(acme, posted(openai_server.url))
    await _register(globex, posted(server_b.url))
    posted_frames: dict[str, list[dict[str, Any]]] = {}

    def poster(_endpoint: str, connection_id: str) -> Post:
        async def post(data: bytes) -> None:
            posted_frames.setdefault(connection_id, []).append(json.loads(data))

        return post

    gateway = WebSocketGateway(app.state.services, MemoryRegistry(), poster=poster, env={})
    outsider = await caller(app, client, "initech")
    refused = await gateway.connect(_ws_event("c0", key=outsider.key, agent="support"))
    assert refused["statusCode"] == 404
    for connection, who in (("c1", acme), ("c2", globex)):
        assert (await gateway.connect(_ws_event(connection, key=who.key)))["statusCode"] == 200

    openai_server.push(Reply("acme over API Gateway"))
    server_b.push(Reply("globex over API Gateway"))
    for connection in ("c1", "c2"):
        event = _ws_event(connection)
        event["body"] = json.dumps({"action": "run", "agent": "support", "query": "hi"})
        reply = await gateway.message(event)
        assert reply.job is not None, reply.response
        result = await gateway.run_job(reply.job)
        assert result["status"] == "succeeded"

    def answer(connection: str) -> str:
        [done] = [f for f in posted_frames[connection] if f["type"] == "done"]
        return str(done["answer"])

    assert answer("c1") == "acme over API Gateway"
    assert answer("c2") == "globex over API Gateway"
    runs = await (await app.state.services.runtime.state()).runs.list_runs()
    assert sorted(r.tenant for r in runs) == ["acme", "globex"]


async def test_a_messaging_channel_runs_its_configured_tenants_agent(
    state, make_app, client_of, openai_server, server_b, redis_url, redis_prefix
):
    with PlatformServer() as bot_api:
        env = telegram_env(
            bot_api.url,
            TELEGRAM_TENANT="globex",
            TELEGRAM_DEFAULT_AGENT="support",
            ASTROMESH_REDIS_URL=redis_url,
            ASTROMESH_CHANNELS_REDIS_PREFIX=redis_prefix,
        )
        app = make_app(state=state, env=env)
        client = client_of(app)
        acme = await caller(app, client, "acme")
        globex = await caller(app, client, "globex")
        await _register(acme, posted(openai_server.url))
        await _register(globex, posted(server_b.url))
        server_b.push(Reply("globex on Telegram"))

        delivered = await client.post(
            "/v1/channels/telegram/webhook", json=telegram_update("hi"), headers=telegram_headers()
        )
        assert delivered.status_code == 200
        await app.state.channel_hub.drain()
        bot_api.wait_for(1)
        assert bot_api.texts() == ["globex on Telegram"]
        assert openai_server.requests == []
        [run] = await (await app.state.services.runtime.state()).runs.list_runs()
        assert run.tenant == "globex"


async def test_a_child_run_of_a_registered_agent_stays_in_its_tenant(
    state, agents_dir, make_app, client_of, openai_server
):
    write_agent(agents_dir, "researcher", model=primary(openai_server.url))
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    document = agent_document(
        "support",
        model=primary(openai_server.url),
        tools=[{"name": "ask_researcher", "type": "agent", "agent": "researcher"}],
    )
    await _register(acme, document)
    openai_server.push(
        Reply(tool_calls=[("ask_researcher", {"query": "look it up"})]),
        Reply("the researcher found it"),
        Reply("Done: it was found."),
    )

    run = (await acme.run("support")).json()
    assert run["answer"] == "Done: it was found.", run
    runs = (await app.state.services.runtime.state()).runs
    children = [r for r in await runs.list_runs() if r.parent_run_id == run["run_id"]]
    assert [(c.agent, c.tenant, c.status) for c in children] == [
        ("researcher", "acme", RunStatus.SUCCEEDED)
    ]


# -- Step Functions --------------------------------------------------------------------------


async def test_a_step_functions_run_resolves_its_tenants_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openai_server, server_b
):
    """The step workers, which share only the store with the API, find the run's agent by
    the run's tenant: globex's ``support`` never answers a run of acme's."""
    from astromesh.channels import ServerSettings, create_app
    from astromesh.runtime import AgentRuntime
    from astromesh.stores.sqlite import SQLiteBackend
    from tests.support.stepfunctions import REGION, LocalStepFunctions

    agents = tmp_path / "aws-agents"
    agents.mkdir()
    db = tmp_path / "aws.db"
    for name, value in {
        "ASTROMESH_AGENTS_DIR": str(agents),
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(db),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_DEFAULT_REGION": REGION,
        **TEST_REGISTRATION_ENV,  # the step functions' policy, read from os.environ
    }.items():
        monkeypatch.setenv(name, value)
    state = SQLiteBackend(db)
    runtime = AgentRuntime(agents, env=TEST_REGISTRATION_ENV, state=state)
    with LocalStepFunctions() as sfn:
        app = create_app(
            runtime,
            ServerSettings(background_runs=False, standard_machine_arn=sfn.standard_arn),
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            acme = await caller(app, client, "acme")
            globex = await caller(app, client, "globex")
            await _register(acme, posted(openai_server.url))
            await _register(globex, posted(server_b.url))
            openai_server.push(Reply("acme on the state machine"))
            server_b.push(Reply("globex on the state machine"))

            finished: dict[str, dict[str, Any]] = {}
            for who in (acme, globex):
                accepted = await who.run("support", params={"mode": "async"})
                assert accepted.status_code == 202, accepted.text
                run_id = accepted.json()["run_id"]
                deadline = time.monotonic() + 60
                while (run := (await who.get(f"/v1/runs/{run_id}")).json())["status"] == "running":
                    assert time.monotonic() < deadline, "the state machine did not finish"
                    await asyncio.sleep(0.1)
                finished[who.tenant] = run
            await app.state.services.aclose()
    await runtime.close()
    await state.close()

    assert finished["acme"]["answer"] == "acme on the state machine", finished["acme"]
    assert finished["globex"]["answer"] == "globex on the state machine", finished["globex"]
    assert len(openai_server.requests) == 1 and len(server_b.requests) == 1


async def test_a_tenants_namesake_cannot_spend_its_daily_budget(
    state, make_app, client_of, openai_server, server_b
):
    """cost_limit's per-day budget of a registered agent is its tenant's alone."""

    def budgeted(url: str) -> dict[str, Any]:
        document = posted(url)
        document["spec"]["guardrails"] = {
            "input": [{"type": "cost_limit", "max_tokens_per_day": 20}]
        }
        return document

    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme")
    globex = await caller(app, client, "globex")
    await _register(acme, budgeted(openai_server.url))
    await _register(globex, budgeted(server_b.url))
    server_b.push(Reply("one", tokens_in=15, tokens_out=10), Reply("two"))
    assert (await globex.run("support")).json()["answer"] == "one"
    spent = (await globex.run("support")).json()
    assert spent["answer"] != "two"  # globex's budget is spent...
    openai_server.push(Reply("acme still runs"))
    assert (await acme.run("support")).json()["answer"] == "acme still runs"  # ...not acme's

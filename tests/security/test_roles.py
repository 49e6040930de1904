"""Keys have roles: ``user`` runs and reads, ``developer`` manages its tenant's agents,
``admin`` acts on every tenant and on the file agents' shared status. Every route's least role
is in one table (``access.ROUTE_ROLES``), checked against the app's routes here so a new
route cannot ship without a rule. Keys from before roles existed are developers. A keyless
(open) ``astromesh dev`` listens on loopback only unless ``--insecure``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Route, WebSocketRoute

from astromesh.auth import Role
from astromesh.auth.base import hash_secret
from astromesh.channels import ServerSettings, access, create_app
from astromesh.channels.access import PUBLIC, ROUTE_ROLES
from astromesh.cli import is_loopback
from astromesh.runs.state import utcnow
from astromesh.runtime import AgentRuntime
from astromesh.stores._common import sortable_timestamp
from astromesh.stores.base import StateBackend
from astromesh.stores.factory import open_backend
from astromesh.stores.memory import MemoryBackend
from astromesh.stores.migrations import load_migrations, migrate_postgres, migrate_sqlite
from astromesh.telemetry.prometheus import PrometheusExporter
from tests.channels.conftest import TEST_TOOL_MODULES, AppFactory
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply
from tests.support.tenants import STORES, Caller, caller, open_store, posted

REPO = Path(__file__).resolve().parents[2]
ROLES_BEFORE = 4
"""The schema version before keys had roles and agents tenants (migration 0005)."""


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


# -- the route table -----------------------------------------------------------------------


def full_app(agents_dir: Path) -> FastAPI:
    """An app with every optional router (Prometheus' ``/metrics``, the webhooks, console)."""
    exporter = PrometheusExporter()
    runtime = AgentRuntime(agents_dir, env={}, state=MemoryBackend())
    settings = ServerSettings(registered_tool_modules=TEST_TOOL_MODULES)
    return create_app(runtime, settings, prometheus=exporter)


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """``(method, path)`` of every route the app serves (``WEBSOCKET`` for a socket)."""
    return _routes(app.routes, "")


def _routes(routes: Iterable[Any], prefix: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI >= 0.13x keeps included routers lazy
            found |= _routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIWebSocketRoute | WebSocketRoute):
            found.add(("WEBSOCKET", prefix + route.path))
        elif isinstance(route, APIRoute | Route):
            found.update((m, prefix + route.path) for m in (route.methods or ()) - {"HEAD"})
        else:  # pragma: no cover - a mount or another kind of route: give it a rule
            raise AssertionError(f"unexpected route {route!r}: teach this test about it")
    return found


def test_every_route_has_exactly_one_role_rule(agents_dir):
    routes = app_routes(full_app(agents_dir))
    assert routes - set(ROUTE_ROLES) == set(), "routes without a rule in access.ROUTE_ROLES"
    assert set(ROUTE_ROLES) - routes == set(), "rules in access.ROUTE_ROLES for no route"


PARAMS = {  # an agent nobody has: a route that lets the caller through answers 404, not 403
    "name": "nobody",
    "agent": "nobody",
    "run_id": "run_" + "0" * 32,
    "session_id": "s",
    "channel": "telegram",
    "trace_id": "t",
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/agents/{name}/run"): {"query": "q"},
    ("POST", "/v1/agents/{name}/stream"): {"query": "q"},
    ("POST", "/v1/rag/query"): {"pipeline": "none", "query": "q"},
    ("POST", "/v1/rag/ingest"): {"pipeline": "none", "document": "d"},
    ("POST", "/v1/runs/{run_id}/tool_outputs"): {"tool_outputs": []},
}


async def call(client: httpx.AsyncClient, method: str, path: str, **headers: str) -> httpx.Response:
    url = path.format(**PARAMS)
    body = BODIES.get((method, path))
    if body is None and method in ("POST", "PUT"):
        body = {}
    return await client.request(method, url, json=body, headers=headers)


async def test_every_route_enforces_the_tables_role(
    agents_dir, client_of, monkeypatch, openai_server
):
    """With the real table a user key is refused what needs more; with every rule raised to
    admin, a developer is refused everywhere: each route consults the table."""
    write_agent(agents_dir, model=primary(openai_server.url))
    app = full_app(agents_dir)
    client = client_of(app)
    user = await caller(app, client, "acme", Role.USER)
    developer = await caller(app, client, "acme", Role.DEVELOPER)
    http_routes = sorted(r for r in ROUTE_ROLES if r[0] != "WEBSOCKET")
    try:
        for method, path in http_routes:
            needed = ROUTE_ROLES[method, path]
            anonymous = await call(client, method, path)
            if needed is PUBLIC:
                assert anonymous.status_code != 401, (method, path)
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            for who in (user, developer):
                answer = await call(client, method, path, **who.headers)
                if who.role.includes(needed):
                    assert answer.status_code != 403, (method, path, who.role, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, who.role, answer.text)
                    message = answer.json()["error"]["message"]
                    assert f"needs the role '{needed.value}'" in message, message
                    assert f"has the role '{who.role.value}'" in message, message

        for rule, needed in ROUTE_ROLES.items():
            if needed is not PUBLIC:
                monkeypatch.setitem(access.ROUTE_ROLES, rule, Role.ADMIN)  # type: ignore[arg-type]
        for method, path in http_routes:
            if ROUTE_ROLES[method, path] is PUBLIC:
                continue
            answer = await call(client, method, path, **developer.headers)
            assert answer.status_code == 403, (method, path, answer.text)
            assert "needs the role 'admin'" in answer.json()["error"]["message"]
    finally:
        await app.state.services.aclose()
        await app.state.services.runtime.close()


async def test_a_route_missing_from_the_table_is_admin_only():
    assert access.route_role("POST", "/v1/not-in-the-table") is Role.ADMIN
    assert access.route_role("HEAD", "/v1/health") is PUBLIC


# -- roles on the agent routes -------------------------------------------------------------


async def test_a_user_key_runs_and_reads_but_cannot_change_agents(
    state, make_app, client_of, openai_server
):
    app = make_app(state=state)
    client = client_of(app)
    developer = await caller(app, client, "acme", Role.DEVELOPER)
    user = await caller(app, client, "acme", Role.USER)
    created = await developer.post("/v1/agents", json=posted(openai_server.url))
    assert created.status_code == 201

    refused = {
        "register": await user.post("/v1/agents", json=posted(openai_server.url, "other")),
        "update": await user.put("/v1/agents/support", json=posted(openai_server.url)),
        "delete": await user.delete("/v1/agents/support"),
        "pause": await user.post("/v1/agents/support/pause"),
        "resume": await user.post("/v1/agents/support/resume"),
        "deploy": await user.post("/v1/agents/support/deploy"),
    }
    for what, answer in refused.items():
        assert answer.status_code == 403, (what, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "forbidden"
        assert "needs the role 'developer'" in error["message"], error
    assert (await developer.get("/v1/agents/support")).json()["revision"] == 1

    openai_server.push(Reply("for the user"))
    ran = await user.run("support", "q", session_id="s")
    assert ran.json()["answer"] == "for the user"
    assert (await user.get(f"/v1/runs/{ran.json()['run_id']}")).status_code == 200
    assert [a["name"] for a in (await user.get("/v1/agents")).json()["agents"]] == ["support"]
    assert (await user.get("/v1/agents/support")).status_code == 200
    assert (await user.get("/v1/tools")).status_code == 200
    history = await user.get("/v1/memory/support/history/s")
    assert [m["content"] for m in history.json()["history"]] == ["q", "for the user"]


async def test_only_an_admin_changes_a_file_agents_status(
    state, agents_dir, make_app, client_of, openai_server
):
    write_agent(agents_dir, "faq", model=primary(openai_server.url))
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme", Role.DEVELOPER)
    globex = await caller(app, client, "globex", Role.USER)
    admin = await caller(app, client, "ops", Role.ADMIN)

    for action in ("pause", "resume", "deploy"):
        answer = await acme.post(f"/v1/agents/faq/{action}")
        assert answer.status_code == 403, answer.text
        assert "needs the role 'admin'" in answer.json()["error"]["message"]
    # still read-only for a developer, as before roles
    assert (
        await acme.put("/v1/agents/faq", json=posted(openai_server.url, "faq"))
    ).status_code == 409
    assert (await acme.delete("/v1/agents/faq")).status_code == 409

    assert (await admin.post("/v1/agents/faq/pause")).json()["status"] == "paused"
    for who in (acme, globex):  # every tenant's
        assert (await who.run("faq")).status_code == 409
        assert (await who.get("/v1/agents/faq")).json()["status"] == "paused"
    assert (await admin.post("/v1/agents/faq/deploy")).json()["status"] == "deployed"
    openai_server.push(Reply("back"))
    assert (await globex.run("faq")).json()["answer"] == "back"


async def test_only_an_admin_names_another_tenant(state, make_app, client_of, openai_server):
    app = make_app(state=state)
    client = client_of(app)
    acme = await caller(app, client, "acme", Role.DEVELOPER)
    admin = await caller(app, client, "ops", Role.ADMIN)
    assert (await acme.post("/v1/agents", json=posted(openai_server.url))).status_code == 201

    for what in (
        await acme.get("/v1/agents", params={"tenant": "globex"}),
        await acme.post("/v1/agents/support/pause", params={"tenant": "globex"}),
    ):
        assert what.status_code == 403
        assert "needs the role 'admin'" in what.json()["error"]["message"]
    own = await acme.get("/v1/agents/support", params={"tenant": "acme"})
    assert own.status_code == 200  # naming its own tenant is fine
    bad = await admin.get("/v1/agents", params={"tenant": "Not A Tenant"})
    assert bad.status_code == 422
    registered = await admin.post(
        "/v1/agents", json=posted(openai_server.url, "helper"), params={"tenant": "globex"}
    )
    assert registered.status_code == 201
    assert (await admin.get("/v1/agents/helper", params={"tenant": "globex"})).json()[
        "tenant"
    ] == "globex"
    assert (await acme.get("/v1/agents/helper")).status_code == 404


async def test_the_open_dev_server_is_admin_of_default(
    agents_dir, make_app, client_of, openai_server
):
    write_agent(agents_dir, "faq", model=primary(openai_server.url))
    client = client_of(make_app())
    assert (await client.post("/v1/agents/faq/pause")).status_code == 200
    created = await client.post("/v1/agents", json=posted(openai_server.url))
    assert created.status_code == 201
    listing = (await client.get("/v1/agents")).json()["agents"]
    assert [(a["name"], a["tenant"]) for a in listing] == [("faq", None), ("support", "default")]


# -- keys from before roles ------------------------------------------------------------------

LEGACY_KEY_ID = "legacy"
LEGACY_SECRET = "s" * 24
LEGACY_SALT = "ab" * 16


async def _old_schema(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, source: str
) -> StateBackend:
    """A store migrated to before 0005 holding a key, a registered agent of ``acme`` and two
    statuses written the old way, then opened (which applies 0005)."""
    stamp = sortable_timestamp(utcnow())
    key_row = (
        LEGACY_KEY_ID,
        "acme",
        '["*"]',
        LEGACY_SALT,
        hash_secret(LEGACY_SALT, LEGACY_SECRET),
        "from before roles",
    )
    if kind == "sqlite":
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            migrate_sqlite(conn, load_migrations("sqlite")[:ROLES_BEFORE])
            conn.execute(
                "INSERT INTO api_keys (key_id, tenant, agents, salt, secret_hash, label,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key_row, stamp),
            )
            conn.execute(
                "INSERT INTO agents (name, source, revision, tenant, created_at, updated_at)"
                " VALUES ('support', ?, 3, 'acme', ?, ?)",
                (source, stamp, stamp),
            )
            conn.executemany(
                "INSERT INTO agent_status (name, status, updated_at) VALUES (?, 'paused', ?)",
                [("support", stamp), ("faq", stamp)],
            )
        finally:
            conn.close()
        state = open_backend("sqlite", sqlite_path=path)
    else:
        dsn = request.getfixturevalue("postgres_schema")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await migrate_postgres(conn, load_migrations("postgres")[:ROLES_BEFORE])
            await conn.execute(
                "INSERT INTO api_keys (key_id, tenant, agents, salt, secret_hash, label)"
                " VALUES (%s, %s, %s::jsonb, %s, %s, %s)",
                key_row,
            )
            await conn.execute(
                "INSERT INTO agents (name, source, revision, tenant)"
                " VALUES ('support', %s, 3, 'acme')",
                (source,),
            )
            await conn.execute(
                "INSERT INTO agent_status (name, status)"
                " VALUES ('support', 'paused'), ('faq', 'paused')"
            )
        state = open_backend("postgres", postgres_dsn=dsn)
    await state.open()
    return state


@pytest.mark.parametrize("kind", STORES)
async def test_keys_and_agents_from_before_the_migration(
    kind, tmp_path, request, agents_dir, make_app, client_of, openai_server
):
    """The key becomes a developer of its tenant; the agent stays its tenant's, with its
    status; the file agent's status stays every tenant's."""
    write_agent(agents_dir, "faq", model=primary(openai_server.url))
    source = yaml.safe_dump(posted(openai_server.url), sort_keys=False)
    state = await _old_schema(kind, tmp_path, request, source)
    try:
        app = make_app(state=state)
        client = client_of(app)
        legacy = Caller(client, f"am_{LEGACY_KEY_ID}_{LEGACY_SECRET}", "acme", Role.DEVELOPER)
        [record] = await (await app.state.services.keys()).list()
        assert (record.key_id, record.tenant, record.role) == (
            LEGACY_KEY_ID,
            "acme",
            Role.DEVELOPER,
        )

        mine = (await legacy.get("/v1/agents/support")).json()
        assert (mine["tenant"], mine["revision"], mine["status"]) == ("acme", 3, "paused")
        assert (await legacy.post("/v1/agents/support/resume")).json()["status"] == "deployed"
        updated = await legacy.put("/v1/agents/support", json=posted(openai_server.url))
        assert updated.json()["revision"] == 4  # a developer: it manages its tenant's agents
        assert (await legacy.post("/v1/agents/faq/resume")).status_code == 403  # not an admin

        globex = await caller(app, client, "globex", Role.USER)
        assert (await globex.get("/v1/agents/support")).status_code == 404
        assert (await globex.get("/v1/agents/faq")).json()["status"] == "paused"
        developer = await caller(app, client, "globex")
        again = await developer.post("/v1/agents", json=posted(openai_server.url))
        assert again.status_code == 201  # the name is acme's only
    finally:
        await state.close()


# -- the CLI ---------------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((str(REPO / "layers" / "runtime"), str(REPO))),
        "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
        "ASTROMESH_AUTH": "auto",
        **extra,
    }


def astromesh(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "astromesh.cli", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_create_takes_a_role_and_list_shows_it(tmp_path):
    write_agent(tmp_path / "agents")
    made = {
        role: astromesh(
            "keys", "create", "--tenant", "acme", "--agents", "*", *args, tmp_path=tmp_path
        )
        for role, args in (
            ("developer", ()),
            ("admin", ("--role", "admin")),
            ("user", ("--role", "user")),
        )
    }
    for role, created in made.items():
        assert created.returncode == 0, created.stderr
        assert f"created {role} key" in created.stderr
    rows = [
        line.split("\t")
        for line in astromesh("keys", "list", tmp_path=tmp_path).stdout.splitlines()
    ]
    assert [row[-1] for row in rows] == ["developer", "admin", "user"]
    bad = astromesh(
        "keys", "create", "--tenant", "acme", "--agents", "*", "--role", "root", tmp_path=tmp_path
    )
    assert bad.returncode == 2 and "role 'root' is not valid" in bad.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Start ``astromesh dev`` on all interfaces, wait for its health, stop it; (status, log)."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "astromesh.cli",
            "dev",
            "--port",
            str(port),
            "--agents",
            "agents",
            "--host",
            "0.0.0.0",
            *args,
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    return server.returncode, server.communicate()[1]
                assert time.monotonic() < deadline, "astromesh dev did not start"
                time.sleep(0.1)
    finally:
        if server.poll() is None:
            server.terminate()
    return status, server.communicate(timeout=20)[1]


def test_an_open_dev_server_listens_on_loopback_only_unless_insecure(tmp_path):
    write_agent(tmp_path / "agents")
    code, log = _serve(tmp_path)
    assert code == 2, log
    assert "refusing to serve OPEN on 0.0.0.0" in log and "--insecure" in log

    status, log = _serve(tmp_path, "--insecure")
    assert status == 200, log
    assert "WARNING: serving OPEN on 0.0.0.0 (--insecure)" in log


def test_a_dev_server_with_keys_listens_anywhere(tmp_path):
    write_agent(tmp_path / "agents")
    created = astromesh("keys", "create", "--tenant", "acme", "--agents", "*", tmp_path=tmp_path)
    assert created.returncode == 0, created.stderr
    status, log = _serve(tmp_path)
    assert status == 200, log
    assert "refusing" not in log and "WARNING: serving OPEN" not in log

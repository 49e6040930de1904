"""Upstream's command-line client (``astromeshctl``) against the app: the HTTP calls its
``status``, ``doctor``, ``tools list``, ``tools test``, ``agents list``, ``run``, ``traces`` and
``metrics`` commands make, with the trailing slashes it sends, and the shapes it reads.

Its client (``astromesh_cli/client.py``) is ``httpx`` without a key and without following
redirects, ``raise_for_status()`` then ``.json()``: so every call below must answer 2xx
directly (never a 307 to the path without the slash), and errors carry upstream's ``detail``
string beside ours (its web console throws ``new Error(body.detail)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from astromesh.auth import Role
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import primary, write_agent
from tests.support.http_receivers import ScriptedHTTPServer
from tests.support.model_servers import Reply
from tests.support.tenants import caller

pytestmark = pytest.mark.asyncio


def assert_upstream_error(response: httpx.Response, status: int, code: str) -> str:
    """Upstream's clients read ``detail`` as a string; ours is ``error``: both, the same."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"] == body["error"]["message"]
    return body["detail"]


# -- errors ----------------------------------------------------------------------------------


async def test_every_kind_of_error_carries_upstreams_detail(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    client = client_for(make_app(max_body_bytes=1024))
    unknown = await client.post("/v1/agents/nobody/run", json={"query": "hi"})
    assert "nobody" in assert_upstream_error(unknown, 404, "not_found")
    assert_upstream_error(await client.get("/v2/nothing"), 404, "not_found")
    assert_upstream_error(await client.delete("/v1/health"), 405, "method_not_allowed")
    invalid = await client.post("/v1/agents/helper/run", json={"query": 5})
    assert "query" in assert_upstream_error(invalid, 422, "validation_error")
    text = await client.post("/v1/agents/helper/run", content=b'{"query": "\\ud800"}')
    assert "query" in assert_upstream_error(text, 422, "invalid_text")
    big = await client.post("/v1/agents/helper/run", json={"query": "x" * 4096})
    assert_upstream_error(big, 413, "payload_too_large")


# -- status and doctor -----------------------------------------------------------------------


async def test_status_answers_what_astromeshctl_status_prints(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    client = client_for(make_app())
    for path in ("/v1/system/status", "/v1/system/status/"):
        response = await client.get(path)
        assert response.status_code == 200, response.text
        data = response.json()
        # print_status_table reads exactly these
        assert isinstance(data["version"], str) and data["version"]
        assert data["mode"] == "dev"
        assert data["uptime_seconds"] >= 0
        assert data["agents_loaded"] == 1
        assert isinstance(data["pid"], int)
        assert data["services"] == {} and data["peers"] == [] and data["mesh"] is None


async def test_status_in_the_lambda_api_says_lambda_and_needs_a_key(
    agents_dir, make_app, client_for
):
    write_agent(agents_dir)
    app = make_app(auth="required", background_runs=False)  # the api function's settings
    client = client_for(app)
    assert_upstream_error(await client.get("/v1/system/status/"), 401, "unauthorized")
    user = await caller(app, client, "acme", Role.USER)
    status = await user.get("/v1/system/status/")
    assert status.status_code == 200, status.text
    assert status.json()["mode"] == "lambda" and status.json()["agents_loaded"] == 1


async def test_providers_lists_what_astromeshctl_providers_prints_to_admins_only(
    agents_dir, make_app, client_for
):
    write_agent(agents_dir)
    (agents_dir / "providers.yaml").write_text(
        """\
apiVersion: astromesh/v1
kind: ProviderConfig
metadata: {name: models}
spec:
  providers:
    gpu:
      type: vllm
      endpoint: http://10.0.0.7:8000/v1
      models: [llama-3.1-8b]
      api_key_env: GPU_KEY
""",
        encoding="utf-8",
    )
    app = make_app(auth="required", env={"GPU_KEY": "sk-secret-value"})
    client = client_for(app)
    admin = await caller(app, client, "acme", Role.ADMIN)
    developer = await caller(app, client, "acme", Role.DEVELOPER)

    listed = await admin.get("/v1/providers/")
    refused = await developer.get("/v1/providers")

    assert listed.status_code == 200, listed.text
    # list_providers reads providers[].name, .endpoint and .models
    assert listed.json()["providers"] == [
        {
            "name": "gpu",
            "type": "vllm",
            "endpoint": "http://10.0.0.7:8000/v1",
            "models": ["llama-3.1-8b"],
            "api_key_env": "GPU_KEY",
        }
    ]
    assert "sk-secret-value" not in listed.text
    assert_upstream_error(refused, 403, "forbidden")


async def test_doctor_checks_the_real_parts_and_reports_healthy(
    agents_dir, make_app, client_for, openai_server, redis_url
):
    write_agent(agents_dir, model=primary(openai_server.url))
    client = client_for(make_app(env={"ASTROMESH_REDIS_URL": redis_url}, state=MemoryBackend()))
    response = await client.get("/v1/system/doctor/")
    assert response.status_code == 200, response.text
    report = response.json()
    checks = report["checks"]
    assert report["healthy"] is True, checks
    assert checks["state_store"]["status"] == "ok"
    assert checks["redis"]["status"] == "ok" and "PING" in checks["redis"]["message"]
    assert checks["agents"] == {"status": "ok", "message": "1 agent(s) loaded"}
    providers = {name: c for name, c in checks.items() if name.startswith("provider:")}
    assert len(providers) == 1
    [provider] = providers.values()
    assert provider["status"] == "ok" and openai_server.url in provider["message"]
    # doctor's table reads status and message of each check
    assert all(set(c) >= {"status", "message"} for c in checks.values())


async def test_doctor_names_what_is_down(agents_dir, make_app, client_for, closed_port_url):
    write_agent(agents_dir, model=primary(closed_port_url))
    write_agent(
        agents_dir,
        name="broken",
        tools=[{"name": "x", "type": "python", "handler": "no_such_module:f"}],
    )
    redis_down = closed_port_url.replace("http://", "redis://") + "/0"
    client = client_for(make_app(env={"ASTROMESH_REDIS_URL": redis_down}, state=MemoryBackend()))
    report = (await client.get("/v1/system/doctor")).json()
    checks = report["checks"]
    assert report["healthy"] is False
    assert checks["state_store"]["status"] == "ok"
    assert checks["redis"]["status"] == "error"
    assert "password" not in checks["redis"]["message"]
    assert checks["agents"]["status"] == "degraded" and "broken" in checks["agents"]["message"]
    [provider] = [c for name, c in checks.items() if name.startswith("provider:")]
    assert provider["status"] == "unavailable" and closed_port_url in provider["message"]


async def test_doctor_without_redis_is_not_configured_and_still_healthy(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    report = (await client_for(make_app()).get("/v1/system/doctor")).json()
    assert report["checks"]["redis"]["status"] == "not_configured"
    assert report["healthy"] is True


async def test_doctor_is_the_operators_and_status_any_keys(agents_dir, make_app, client_for):
    write_agent(agents_dir)
    app = make_app()
    client = client_for(app)
    user = await caller(app, client, "acme", Role.USER)
    assert (await user.get("/v1/system/status")).status_code == 200
    refused = await user.get("/v1/system/doctor")
    assert "admin" in assert_upstream_error(refused, 403, "forbidden")
    admin = await caller(app, client, "acme", Role.ADMIN)
    assert (await admin.get("/v1/system/doctor")).status_code == 200


# -- tools list / tools test -----------------------------------------------------------------


async def test_tools_list_shows_every_builtin_with_its_parameters(agents_dir, make_app, client_for):
    client = client_for(make_app())
    response = await client.get("/v1/tools/builtin/")
    assert response.status_code == 200, response.text
    data = response.json()
    tools = {tool["name"]: tool for tool in data["tools"]}
    assert data["count"] == len(data["tools"])
    assert {"calculator", "current_time", "http_get", "read_file", "json_transform"} <= set(tools)
    calculator = tools["calculator"]
    assert calculator["description"] and "expression" in calculator["parameters"]["properties"]
    assert calculator["allowed"] is True
    # read_file is not granted to API callers by the default policy
    assert tools["read_file"]["allowed"] is False


async def test_tools_test_runs_a_builtin_as_upstreams_client_calls_it(
    agents_dir, make_app, client_for
):
    client = client_for(make_app())
    response = await client.post(
        "/v1/tools/execute/", json={"tool_name": "calculator", "arguments": {"expression": "2+3"}}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["tool"] == "calculator" and data["status"] == "ok"
    assert data["result"] == {"expression": "2+3", "result": 5}


async def test_tools_test_bad_input_is_a_4xx_naming_the_field(agents_dir, make_app, client_for):
    client = client_for(make_app())
    typo = await client.post("/v1/tools/execute", json={"tool_name": "calculater"})
    assert "calculator" in assert_upstream_error(typo, 404, "not_found")
    missing = await client.post(
        "/v1/tools/execute", json={"tool_name": "calculator", "arguments": {}}
    )
    assert "arguments" in assert_upstream_error(missing, 422, "invalid_request")
    bad_config = await client.post(
        "/v1/tools/execute",
        json={"tool_name": "current_time", "config": {"no_such_key": 1}},
    )
    assert "config" in assert_upstream_error(bad_config, 422, "invalid_request")
    needs_model = await client.post(
        "/v1/tools/execute", json={"tool_name": "text_summarize", "arguments": {"text": "x"}}
    )
    assert "agent" in assert_upstream_error(needs_model, 422, "invalid_request")


async def test_tools_test_needs_the_role_that_registers_agents(agents_dir, make_app, client_for):
    app = make_app()
    client = client_for(app)
    user = await caller(app, client, "acme", Role.USER)
    body = {"tool_name": "calculator", "arguments": {"expression": "1+1"}}
    refused = await user.post("/v1/tools/execute", json=body)
    assert "developer" in assert_upstream_error(refused, 403, "forbidden")
    developer = await caller(app, client, "acme", Role.DEVELOPER)
    assert (await developer.post("/v1/tools/execute", json=body)).json()["status"] == "ok"
    assert (await user.get("/v1/tools/builtin")).status_code == 200


async def test_network_tools_go_through_the_ssrf_guard(agents_dir, make_app, client_for):
    client = client_for(make_app())
    with ScriptedHTTPServer() as inside:
        loopback = await client.post(
            "/v1/tools/execute",
            json={"tool_name": "http_get", "arguments": {"url": f"{inside.url}/secret"}},
        )
        metadata = await client.post(
            "/v1/tools/execute",
            json={
                "tool_name": "http_get",
                "arguments": {"url": "http://169.254.169.254/latest/meta-data/"},
            },
        )
        widened = await client.post(
            "/v1/tools/execute",
            json={
                "tool_name": "http_get",
                "config": {"allow_private_network": True},
                "arguments": {"url": f"{inside.url}/secret"},
            },
        )
        assert inside.requests == []  # nothing reached the private server
    for refused in (loopback, metadata):
        assert refused.status_code == 200, refused.text
        data = refused.json()
        assert data["status"] == "error" and "http_get" in data["result"]
    assert "allow_private_network" in assert_upstream_error(widened, 403, "forbidden")


async def test_read_file_reads_under_the_policy_roots_only(
    agents_dir, make_app, client_for, tmp_path: Path
):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("the notes")
    (tmp_path / "secret.txt").write_text("the secret")
    env = {
        "ASTROMESH_REGISTRATION_FILE_ROOTS": str(shared),
        "ASTROMESH_REGISTRATION_BUILTINS": "read_file,calculator",
    }
    client = client_for(make_app(env=env, state=MemoryBackend()))

    async def read(path: str, config: dict[str, Any] | None = None) -> httpx.Response:
        body = {"tool_name": "read_file", "arguments": {"path": path}, "config": config or {}}
        return await client.post("/v1/tools/execute", json=body)

    granted = (await read("notes.txt")).json()
    assert granted["status"] == "ok" and granted["result"]["content"] == "the notes"
    escaped = (await read("../secret.txt")).json()
    assert escaped["status"] == "error" and "the secret" not in str(escaped)
    (shared / "link").symlink_to(tmp_path / "secret.txt")
    linked = (await read("link")).json()
    assert linked["status"] == "error" and "the secret" not in str(linked)
    for root in ("/etc", str(tmp_path), "/proc/self"):
        refused = await read("passwd", {"root": root})
        assert "root" in assert_upstream_error(refused, 403, "forbidden")
    not_granted = await client.post(
        "/v1/tools/execute", json={"tool_name": "http_get", "arguments": {"url": "http://x"}}
    )
    assert "ASTROMESH_REGISTRATION_BUILTINS" in assert_upstream_error(not_granted, 403, "forbidden")


# -- agents list / run -----------------------------------------------------------------------


async def test_agents_list_and_run_as_upstreams_client_calls_them(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    client = client_for(make_app())
    for path in ("/v1/agents", "/v1/agents/"):
        listed = await client.get(path)
        assert listed.status_code == 200, listed.text
        [agent] = listed.json()["agents"]
        assert {"name", "version", "namespace"} <= set(agent) and agent["name"] == "helper"
    openai_server.push(Reply("Hello there."))
    ran = await client.post(
        "/v1/agents/helper/run/", json={"query": "Hi", "session_id": "s-1", "connections": None}
    )
    assert ran.status_code == 200, ran.text
    data = ran.json()
    assert data["answer"] == "Hello there."
    assert {"tokens_in", "tokens_out", "by_model"} <= set(data["usage"])


async def test_per_run_connections_and_provider_keys_are_refused_with_the_reason(
    agents_dir, make_app, client_for, openai_server
):
    write_agent(agents_dir, model=primary(openai_server.url))
    client = client_for(make_app())
    connections = await client.post(
        "/v1/agents/helper/run",
        json={"query": "Hi", "connections": {"crm": {"token": "t0ps3cret"}}},
    )
    message = assert_upstream_error(connections, 422, "validation_error")
    assert "connections" in message and "t0ps3cret" not in connections.text
    for headers in (
        {"X-Astromesh-Provider-Name": "openai", "X-Astromesh-Provider-Key": "sk-caller"},
        {"X-Astromesh-Provider-Key": "sk-caller"},
    ):
        for route in ("run", "stream"):
            refused = await client.post(
                f"/v1/agents/helper/{route}", json={"query": "Hi"}, headers=headers
            )
            message = assert_upstream_error(refused, 422, "provider_override_refused")
            assert "X-Astromesh-Provider-Key" in message and "sk-caller" not in refused.text
    assert openai_server.requests == []  # no run started, no key sent anywhere
    openai_server.push(Reply("ok"))
    empty = await client.post("/v1/agents/helper/run", json={"query": "Hi", "connections": {}})
    assert empty.status_code == 200, empty.text


# -- traces / metrics / rag pipelines --------------------------------------------------------


async def test_traces_as_upstreams_client_reads_them(
    agents_dir, openai_server, make_app, client_for
):
    write_agent(agents_dir, model=primary(openai_server.url))
    openai_server.push(Reply("Hello."))
    client = client_for(make_app())
    ran = await client.post("/v1/agents/helper/run", json={"query": "Hi"})
    trace_id = ran.json()["trace"]["trace_id"]

    # astromeshctl traces list helper --last 10: GET /v1/traces/?agent=&limit=
    listed = await client.get("/v1/traces/", params={"agent": "helper", "limit": 10})
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["traces"]
    assert (item["trace_id"], item["agent"], item["status"]) == (trace_id, "helper", "ok")
    assert item["started_at"] and isinstance(item["duration_ms"], float)
    # astromeshctl trace ID: a tree of {name, duration_ms, children}
    one = await client.get(f"/v1/traces/{trace_id}")
    assert one.status_code == 200, one.text
    [root] = one.json()["spans"]
    assert (root["name"], one.json()["agent"]) == ("invoke_agent helper", "helper")
    assert {c["name"] for c in root["children"]} >= {"astromesh.prepare", "astromesh.step"}
    missing = await client.get("/v1/traces/0123456789abcdef0123456789abcdef")
    assert_upstream_error(missing, 404, "not_found")


async def test_rag_pipelines_are_listed_read_and_never_created_through_the_api(
    agents_dir, make_app, client_for
):
    (agents_dir / "handbook.rag.yaml").write_text(
        "apiVersion: astromesh/v1\nkind: RAGPipeline\n"
        "metadata: {name: handbook, description: The staff handbook}\nspec:\n"
        "  embeddings: {provider: openai_compat, model: e, endpoint: 'http://10.0.0.5:8080'}\n"
        "  vector_store:\n    backend: pgvector\n"
        "    connection: 'postgresql://app:hunter2@10.0.0.6/vectors'\n"
    )
    client = client_for(make_app())
    listed = await client.get("/v1/rag/pipelines/")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "pipelines": [
            {"name": "handbook", "description": "The staff handbook", "backend": "pgvector"}
        ]
    }
    one = await client.get("/v1/rag/pipelines/handbook")
    assert one.status_code == 200, one.text
    document = one.json()
    assert document["kind"] == "RAGPipeline" and document["metadata"]["name"] == "handbook"
    assert document["spec"]["vector_store"]["backend"] == "pgvector"
    assert "hunter2" not in one.text and "10.0.0" not in one.text
    unknown = await client.get("/v1/rag/pipelines/handbok")
    assert "handbook" in assert_upstream_error(unknown, 404, "not_found")
    created = await client.post("/v1/rag/pipelines", json={"metadata": {"name": "x"}})
    assert "read-only" in assert_upstream_error(created, 501, "rag_pipelines_read_only")
    for method in ("PUT", "DELETE"):
        answered = await client.request(method, "/v1/rag/pipelines/handbook", json={})
        assert_upstream_error(answered, 501, "rag_pipelines_read_only")

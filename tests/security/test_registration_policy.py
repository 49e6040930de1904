"""Hostile documents posted to /v1/agents against the default (secure) registration policy,
and what an operator's policy may widen. Every refusal is a 422 naming the field, its line
and the policy rule; nothing a refused document names is started, read or connected to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from astromesh.config.runtime_config import RegistrationSettings
from astromesh.errors import ConfigurationError
from astromesh.security.policy import with_env_overrides
from tests.security.conftest import HostileApps, registered
from tests.support.canaries import LoopbackListener, canary_command
from tests.support.model_servers import Reply, ScriptedOpenAIServer


def refusals(response: httpx.Response) -> dict[str, str]:
    """``field -> message`` of a 422's issues."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_agent"
    return {issue["field"]: issue["message"] for issue in error["issues"]}


async def test_a_stdio_mcp_server_is_refused_and_never_started(
    hostile_app: HostileApps, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    command, args = canary_command(canary)
    client = hostile_app()
    tool = {"name": "sh", "type": "mcp", "transport": "stdio", "command": command, "args": args}
    for method, url in (("POST", "/v1/agents"), ("PUT", "/v1/agents/posted")):
        response = await client.request(method, url, json=registered(tools=[tool]))
        found = refusals(response)
        assert "spec.tools[0].transport" in found
        assert "never" in found["spec.tools[0].transport"]
    assert not canary.exists()


async def test_yaml_refusals_name_the_line(hostile_app: HostileApps) -> None:
    tool = {"name": "sh", "type": "mcp", "transport": "stdio", "command": "/bin/sh"}
    text = yaml.safe_dump(registered(tools=[tool]), sort_keys=False)
    response = await hostile_app().post(
        "/v1/agents", content=text, headers={"content-type": "application/yaml"}
    )
    issues = {i["field"]: i for i in response.json()["error"]["issues"]}
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "transport: stdio" in row)
    assert issues["spec.tools[0].transport"]["line"] == line
    assert issues["spec.tools[0].transport"]["file"] == "<request>"
    assert "(policy: registration.tool_types" not in issues["spec.tools[0].transport"]["message"]


@pytest.mark.parametrize(
    "root", ["/proc/self", "/proc", "/", "/etc", "/sys/kernel", "/dev", "../../../../proc/self"]
)
async def test_read_file_roots_outside_the_policy_are_refused(
    hostile_app: HostileApps, tmp_path: Path, root: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    env = {
        "ASTROMESH_REGISTRATION_BUILTINS": "read_file,calculator",
        "ASTROMESH_REGISTRATION_FILE_ROOTS": str(docs),
    }
    tool = {"name": "read_file", "type": "builtin", "config": {"root": root}}
    found = refusals(await hostile_app(env).post("/v1/agents", json=registered(tools=[tool])))
    assert "spec.tools[0].config.root" in found


async def test_read_file_is_not_granted_by_default(hostile_app: HostileApps) -> None:
    tool = {"name": "read_file", "type": "builtin", "config": {"root": "."}}
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=[tool])))
    assert "registration.builtins" in found["spec.tools[0].name"]


async def test_read_file_under_a_granted_root_cannot_escape_it(
    hostile_app: HostileApps, tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("fine")
    (docs / "env").symlink_to("/proc/self/environ")
    env = {
        "ASTROMESH_REGISTRATION_BUILTINS": "read_file",
        "ASTROMESH_REGISTRATION_FILE_ROOTS": str(docs),
    }
    client = hostile_app(env)
    tool = {"name": "read_file", "type": "builtin", "config": {"root": str(docs)}}
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201
    openai_server.push(
        Reply(tool_calls=[("read_file", {"path": "ok.txt"})]),
        Reply(tool_calls=[("read_file", {"path": "env"})]),
        Reply(tool_calls=[("read_file", {"path": "../../../../proc/self/environ"})]),
        Reply("done"),
    )
    run = (await client.post("/v1/agents/posted/run", json={"query": "read"})).json()
    results = [s for s in run["steps"] if s["type"] == "tool_call"]
    assert [r["data"]["ok"] for r in results] == [True, False, False], results
    assert "PATH=" not in str(run)


async def test_webhooks_cannot_reach_private_networks(
    hostile_app: HostileApps, listener: LoopbackListener, openai_server: ScriptedOpenAIServer
) -> None:
    client = hostile_app()
    flagged = {
        "name": "hook",
        "type": "webhook",
        "url": "https://example.com/hook",
        "allow_private_network": True,
    }
    found = refusals(await client.post("/v1/agents", json=registered(tools=[flagged])))
    assert "registration.allow_private_network" in found["spec.tools[0].allow_private_network"]

    literal = {"name": "hook", "type": "webhook", "url": f"{listener.url}/admin"}
    found = refusals(await client.post("/v1/agents", json=registered(tools=[literal])))
    assert "loopback" in found["spec.tools[0].url"]

    # A name is only known at connect time: it registers, and the run's call is refused.
    named = {"name": "hook", "type": "webhook", "url": f"http://localhost:{listener.port}/x"}
    assert (await client.post("/v1/agents", json=registered(tools=[named]))).status_code == 201
    openai_server.push(Reply(tool_calls=[("hook", {})]), Reply("done"))
    run = (await client.post("/v1/agents/posted/run", json={"query": "go"})).json()
    [call] = [s for s in run["steps"] if s["type"] == "tool_call"]
    assert not call["data"]["ok"] and "loopback" in str(call)
    assert listener.connections == 0


async def test_http_get_cannot_reach_loopback(
    hostile_app: HostileApps, listener: LoopbackListener, openai_server: ScriptedOpenAIServer
) -> None:
    client = hostile_app()
    flagged = {"name": "http_get", "type": "builtin", "config": {"allow_private_network": True}}
    refusals(await client.post("/v1/agents", json=registered(tools=[flagged])))
    plain = {"name": "http_get", "type": "builtin"}
    assert (await client.post("/v1/agents", json=registered(tools=[plain]))).status_code == 201
    openai_server.push(
        Reply(tool_calls=[("http_get", {"url": f"{listener.url}/admin"})]),
        Reply(tool_calls=[("http_get", {"url": "http://169.254.169.254/latest/meta-data/"})]),
        Reply("done"),
    )
    run = (await client.post("/v1/agents/posted/run", json={"query": "go"})).json()
    assert [s["data"]["ok"] for s in run["steps"] if s["type"] == "tool_call"] == [False, False]
    assert listener.connections == 0


@pytest.mark.parametrize(
    "candidate",
    [
        {"provider": "openai_compat", "model": "m", "endpoint": "LISTENER/internal-admin?x="},
        {"provider": "ollama", "model": "m"},  # its default endpoint is the server's loopback
        {"provider": "hf_tgi", "model": "m", "endpoint": "http://169.254.169.254/"},
        {"provider": "llamacpp", "model": "m", "endpoint": "LISTENER"},
        {"provider": "house", "model": "scripted", "endpoint": "LISTENER"},
    ],
)
async def test_model_endpoints_are_only_the_operators(
    hostile_app: HostileApps, listener: LoopbackListener, candidate: dict[str, Any]
) -> None:
    candidate = {
        k: v.replace("LISTENER", listener.url) if isinstance(v, str) else v
        for k, v in candidate.items()
    }
    found = refusals(
        await hostile_app().post("/v1/agents", json=registered(model={"primary": candidate}))
    )
    assert any(f.startswith("spec.model.primary") for f in found), found
    assert listener.connections == 0


@pytest.mark.parametrize("model", ["/proc/self/environ", "../../models/x.gguf", "~/m.gguf"])
async def test_local_model_files_only_by_name(hostile_app: HostileApps, model: str) -> None:
    document = registered(model={"primary": {"provider": "llamacpp", "model": model}})
    found = refusals(await hostile_app().post("/v1/agents", json=document))
    assert "spec.model.primary.model" in found


async def test_an_allowlisted_model_host_is_reached_through_the_guard(
    hostile_app: HostileApps, openai_server: ScriptedOpenAIServer
) -> None:
    port = openai_server.url.split(":")[-1].split("/")[0]
    client = hostile_app({"ASTROMESH_REGISTRATION_MODEL_HOSTS": f"127.0.0.1:{port}"})
    document = registered(
        model={
            "primary": {"provider": "openai_compat", "model": "m", "endpoint": openai_server.url}
        }
    )
    assert (await client.post("/v1/agents", json=document)).status_code == 201
    openai_server.push(Reply("hello"))
    run = (await client.post("/v1/agents/posted/run", json={"query": "hi"})).json()
    assert run["answer"] == "hello"


async def test_secrets_cannot_be_named(hostile_app: HostileApps) -> None:
    hook = {
        "name": "hook",
        "type": "webhook",
        "url": "https://example.com/",
        "secret_env": "WHATSAPP_APP_SECRET",
    }
    keyed = {"provider": "openai_compat", "model": "m", "api_key_env": "WHATSAPP_ACCESS_TOKEN"}
    found = refusals(
        await hostile_app().post(
            "/v1/agents", json=registered(tools=[hook], model={"primary": keyed})
        )
    )
    assert "registration.secret_envs" in found["spec.tools[0].secret_env"]
    assert "spec.model.primary.api_key_env" in found


async def test_python_and_mcp_need_the_operator(hostile_app: HostileApps) -> None:
    tools = [
        {"name": "run", "type": "python", "handler": "subprocess:getoutput"},
        {"name": "remote", "type": "mcp", "url": "https://mcp.example.com/mcp"},
    ]
    found = refusals(await hostile_app().post("/v1/agents", json=registered(tools=tools)))
    assert "registration.tool_types" in found["spec.tools[0].type"]
    assert "registration.tool_types" in found["spec.tools[1].type"]

    env = {
        "ASTROMESH_REGISTRATION_TOOL_TYPES": "python,mcp",
        "ASTROMESH_REGISTRATION_MCP_URLS": "https://mcp.example.com/mcp",
    }
    tools[1]["url"] = "https://mcp.example.com/mcp-admin"
    found = refusals(await hostile_app(env).post("/v1/agents", json=registered(tools=tools)))
    assert "python_modules" in found["spec.tools[0].handler"]
    assert "registration.mcp_urls" in found["spec.tools[1].url"]


async def test_permissions_only_narrow(hostile_app: HostileApps) -> None:
    env = {"ASTROMESH_REGISTRATION_NETWORK_HOSTS": "api.example.com"}
    permissions = {
        "network": {"allowed": ["api.example.com", "169.254.169.254", "*.example.com"]},
        "filesystem": {"read": ["/etc"]},
        "execution": {"tool_types": ["builtin", "python"]},
    }
    found = refusals(
        await hostile_app(env).post("/v1/agents", json=registered(permissions=permissions))
    )
    assert set(found) == {
        "spec.permissions.network.allowed[1]",
        "spec.permissions.network.allowed[2]",
        "spec.permissions.filesystem.read[0]",
        "spec.permissions.execution.tool_types[1]",
    }


async def test_agents_outside_the_keys_scope_cannot_be_called(
    hostile_app: HostileApps, agents_dir: Path
) -> None:
    (agents_dir / "admin-bot.agent.yaml").write_text(yaml.safe_dump(registered("admin-bot")))
    client = hostile_app()
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    keys = await services.keys()
    issued = await keys.issue("acme", ["posted"])
    document = registered(
        tools=[{"name": "boss", "type": "agent", "agent": "admin-bot"}],
        orchestration={"pattern": "supervisor", "workers": ["admin-bot"]},
    )
    response = await client.post(
        "/v1/agents", json=document, headers={"authorization": f"Bearer {issued.plaintext}"}
    )
    found = refusals(response)
    assert {"spec.tools[0].agent", "spec.orchestration.workers[0]"} <= set(found)


async def test_a_runtime_config_document_sets_the_policy(
    hostile_app: HostileApps, agents_dir: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "kb"
    docs.mkdir()
    (agents_dir / "runtime.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "astromesh/v1",
                "kind": "RuntimeConfig",
                "metadata": {"name": "runtime"},
                "spec": {
                    "state": {"backend": "memory"},
                    "registration": {"builtins": ["read_file"], "file_roots": [str(docs)]},
                },
            }
        )
    )
    client = hostile_app()
    tool = {"name": "read_file", "type": "builtin", "config": {"root": str(docs)}}
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201
    other = {"name": "read_file", "type": "builtin", "config": {"root": str(tmp_path)}}
    refusals(await client.put("/v1/agents/posted", json=registered(tools=[other])))


def test_a_bad_environment_override_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="ASTROMESH_REGISTRATION_TOOL_TYPES"):
        with_env_overrides(
            RegistrationSettings(), {"ASTROMESH_REGISTRATION_TOOL_TYPES": "builtin,shell"}
        )
    with pytest.raises(ConfigurationError, match="ASTROMESH_REGISTRATION_PRIVATE_NETWORK"):
        with_env_overrides(RegistrationSettings(), {"ASTROMESH_REGISTRATION_PRIVATE_NETWORK": "y"})


async def test_an_agent_registered_under_a_wider_policy_stops_when_it_narrows(
    hostile_app: HostileApps, agents_dir: Path
) -> None:
    """Stored documents are checked again on load, so tightening applies to old ones."""
    from astromesh.stores.sqlite import SQLiteBackend

    state = agents_dir.parent / "state.db"
    wide = {"ASTROMESH_REGISTRATION_BUILTINS": "http_get", "ASTROMESH_STATE_PATH": str(state)}
    client = hostile_app(wide)
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    services.runtime._state = SQLiteBackend(state)
    tool = {"name": "http_get", "type": "builtin"}
    assert (await client.post("/v1/agents", json=registered(tools=[tool]))).status_code == 201

    narrow = hostile_app({"ASTROMESH_REGISTRATION_BUILTINS": "calculator"})
    services = narrow._transport.app.state.services  # type: ignore[attr-defined]
    services.runtime._state = SQLiteBackend(state)
    response = await narrow.post("/v1/agents/posted/run", json={"query": "hi"})
    assert response.status_code >= 400
    assert "registration.builtins" in response.text


async def test_a_template_bomb_found_only_at_build_names_its_field_and_line(
    hostile_app: HostileApps,
) -> None:
    """The loop only runs over the agent's real tools, which the build's trial render has."""
    bomb = (
        "{% for t in tools %}{% for i in range(9999) %}{% for j in range(9999) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    document = registered(tools=[{"name": "calculator", "type": "builtin"}])
    document["spec"]["prompts"]["system"] = bomb
    text = yaml.safe_dump(document, sort_keys=False, width=1000)
    response = await hostile_app().post(
        "/v1/agents", content=text, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 422, response.text
    [issue] = response.json()["error"]["issues"]
    assert issue["field"] == "spec.prompts.system"
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "system:" in row)
    assert issue["line"] == line
    assert "budget" in issue["message"] or "limit" in issue["message"]


async def test_a_registered_agent_cannot_ask_for_a_run_without_end(
    hostile_app: HostileApps,
) -> None:
    document = registered(
        orchestration={
            "pattern": "plan_and_execute",
            "max_iterations": 1_000_000,
            "timeout_seconds": 86_400 * 365,
            "max_replans": 1000,
        },
        model={
            "primary": {
                "provider": "house",
                "model": "scripted",
                "parameters": {"max_tokens": 10**9},
            }
        },
        tools=[
            {"name": "h", "type": "webhook", "url": "https://example.com/", "timeout_seconds": 1e9}
        ],
    )
    found = refusals(await hostile_app().post("/v1/agents", json=document))
    assert {
        "spec.orchestration.max_iterations",
        "spec.orchestration.timeout_seconds",
        "spec.orchestration.max_replans",
        "spec.model.primary.parameters.max_tokens",
        "spec.tools[0].timeout_seconds",
    } <= set(found)
    assert "registration.max_iterations" in found["spec.orchestration.max_iterations"]
    wider = hostile_app({"ASTROMESH_REGISTRATION_MAX_ITERATIONS": "2000000"})
    found = refusals(await wider.post("/v1/agents", json=document))
    assert "spec.orchestration.max_iterations" not in found


@pytest.mark.parametrize("root", ["STATE", "STATE/..", "TMP"])
async def test_the_state_folder_is_never_readable(
    hostile_app: HostileApps, tmp_path: Path, root: str
) -> None:
    state = tmp_path / "data" / ".astromesh"
    state.mkdir(parents=True)
    env = {
        "ASTROMESH_STATE_PATH": str(state / "state.db"),
        "ASTROMESH_REGISTRATION_BUILTINS": "read_file",
        "ASTROMESH_REGISTRATION_FILE_ROOTS": str(tmp_path),  # the operator widened too far
    }
    path = root.replace("STATE", str(state)).replace("TMP", str(tmp_path))
    tool = {"name": "read_file", "type": "builtin", "config": {"root": path}}
    found = refusals(await hostile_app(env).post("/v1/agents", json=registered(tools=[tool])))
    assert ".astromesh" in found["spec.tools[0].config.root"]


def test_the_shipped_runtime_config_writes_out_the_default_grants() -> None:
    """``agents/runtime.yaml`` documents the policy by writing out its defaults: if it lagged
    behind the code, a default checkout would silently grant less (or more) than the README
    says."""
    from pathlib import Path

    from astromesh.config.runtime_config import (
        DEFAULT_REGISTERED_BUILTINS,
        RegistrationSettings,
    )

    shipped = Path(__file__).parents[2] / "agents" / "runtime.yaml"
    document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    written = RegistrationSettings.model_validate(document["spec"]["registration"])
    assert tuple(written.builtins) == DEFAULT_REGISTERED_BUILTINS
    assert written == RegistrationSettings()

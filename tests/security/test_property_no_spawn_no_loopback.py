"""Property: no document registered through the API, run or not, makes the server start a
process or open a connection to a loopback port.

Documents are drawn from hostile pieces (stdio MCP commands, Python handlers of the standard
library, webhooks, ``http_get``, MCP over HTTP and model endpoints aimed at a loopback
listener in every spelling, ``allow_private_network``, file roots in ``/proc``...). Each is
posted, then updated, then, when the server accepted it, run with a model that calls every
tool it has with the listener's URL. The canary file must never exist and the listener must
never see a connection, under the default policy and under a policy widened for tools and
MCP URLs elsewhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import PRICED_MODEL, agent_document, write_priced_provider
from tests.support.canaries import LoopbackListener
from tests.support.model_servers import Reply, ScriptedOpenAIServer

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "127.1", "0.0.0.0", "[::ffff:127.0.0.1]", "2130706433"]

POLICIES: list[dict[str, str]] = [
    {},
    {
        "ASTROMESH_REGISTRATION_TOOL_TYPES": "builtin,webhook,rag,agent,client,python,mcp",
        "ASTROMESH_REGISTRATION_MCP_URLS": "https://mcp.example.com/mcp",
        "ASTROMESH_REGISTRATION_BUILTINS": "http_get,read_file,calculator",
        "ASTROMESH_REGISTERED_TOOL_MODULES": "tests.support",
    },
]


def _pieces(port: int, canary: Path) -> dict[str, st.SearchStrategy[Any]]:
    host = st.sampled_from(LOOPBACK_HOSTS)
    url = st.builds(lambda h, path: f"http://{h}:{port}{path}", host, st.sampled_from(["", "/x"]))
    flag = st.booleans()
    stdio = st.builds(
        lambda cmd: {"type": "mcp", "transport": "stdio", "command": cmd[0], "args": cmd[1]},
        st.sampled_from(
            [
                ("/bin/sh", ["-c", f"touch {canary}"]),
                ("touch", [str(canary)]),
                ("python3", ["-c", f"open({str(canary)!r}, 'w')"]),
            ]
        ),
    )
    mcp_http = st.builds(lambda u: {"type": "mcp", "url": u}, url)
    webhook = st.builds(
        lambda u, f: {"type": "webhook", "url": u, "allow_private_network": f}, url, flag
    )
    http_get = st.builds(
        lambda f: {"type": "builtin", "name": "http_get", "config": {"allow_private_network": f}},
        flag,
    )
    read_file = st.builds(
        lambda r: {"type": "builtin", "name": "read_file", "config": {"root": r}},
        st.sampled_from(["/proc/self", "/", "/etc", "../../..", "."]),
    )
    python = st.builds(
        lambda h: {"type": "python", "handler": h},
        st.sampled_from(["subprocess:getoutput", "os:system", "tests.support.tools:add"]),
    )
    hostile_candidate = st.one_of(
        st.builds(
            lambda p, u: {"provider": p, "model": "m", "endpoint": u},
            st.sampled_from(["openai_compat", "vllm", "ollama", "hf_tgi", "llamacpp", "house"]),
            url,
        ),
        st.builds(
            lambda p: {"provider": p, "model": "m"},
            st.sampled_from(["ollama", "openai_compat", "hf_tgi", "vllm"]),
        ),
    )
    house = PRICED_MODEL["primary"]
    candidate = st.builds(
        lambda hostile, other: other if hostile else house, st.booleans(), hostile_candidate
    )
    # Pieces that pass registration and are hostile only at run time (a host *name* for
    # loopback, a URL the model picks), so that runs are exercised, not only refusals.
    named_webhook = st.builds(
        lambda h, path: {"type": "webhook", "url": f"http://{h}:{port}{path}"},
        st.sampled_from(["localhost", "localhost.", "LOCALHOST"]),
        st.sampled_from(["", "/admin"]),
    )
    plain_http_get = st.just({"type": "builtin", "name": "http_get"})
    registrable = st.one_of(named_webhook, plain_http_get)
    return {
        # Tools that pass registration (names, no flags) are drawn more often, so that runs
        # are exercised, not only refusals.
        "tool": st.builds(
            lambda bad, hostile, fine: hostile if bad else fine,
            st.integers(0, 3).map(lambda n: n == 0),
            st.one_of(stdio, mcp_http, webhook, http_get, read_file, python),
            registrable,
        ),
        "candidate": candidate,
    }


def _document(tools: list[dict[str, Any]], primary: dict[str, Any], fallback: Any) -> Any:
    named = []
    for i, tool in enumerate(tools):
        entry = dict(tool)
        entry.setdefault("name", f"t{i}")
        if entry["type"] == "builtin":
            entry["name"] = tool["name"]
        named.append(entry)
    # builtins keep their own names; two of the same would be a plain validation error
    seen: set[str] = set()
    unique = [t for t in named if not (t["name"] in seen or seen.add(t["name"]))]
    model: dict[str, Any] = {"primary": primary}
    if fallback is not None:
        model["fallback"] = fallback
    return agent_document("posted", model=model, tools=unique)


async def _try(
    document: dict[str, Any],
    env: dict[str, str],
    agents: Path,
    server: ScriptedOpenAIServer,
    model_url: str,
) -> None:
    runtime = AgentRuntime(agents, env=env, state=MemoryBackend())
    app = create_app(runtime, ServerSettings(registered_tool_modules=("tests.support",)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as client:
        created = await client.post("/v1/agents", json=document)
        assert created.status_code in (201, 422), created.text
        event(f"registered: {created.status_code}")
        updated = await client.put("/v1/agents/posted", json=document)
        assert updated.status_code in (200, 404, 422), updated.text
        if created.status_code == 201:
            calls = [
                (tool["name"], {"url": model_url, "path": "proc/self/environ"})
                for tool in document["spec"]["tools"]
            ]
            server.push(Reply(tool_calls=calls), Reply("done"))
            response = await client.post("/v1/agents/posted/run", json={"query": "go"})
            assert response.status_code < 500, response.text
            event(f"run: {response.json().get('status', response.status_code)}")
    await app.state.services.aclose()
    await runtime.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_registered_document_spawns_or_reaches_loopback(
    data: st.DataObject, tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir(exist_ok=True)
    write_priced_provider(agents, openai_server.url)
    canary = tmp_path / "canary"
    with LoopbackListener() as listener:
        pieces = _pieces(listener.port, canary)
        tools = data.draw(st.lists(pieces["tool"], min_size=1, max_size=3), label="tools")
        primary = data.draw(pieces["candidate"], label="primary")
        fallback = data.draw(st.none() | pieces["candidate"], label="fallback")
        env = data.draw(st.sampled_from(POLICIES), label="policy")
        document = _document(tools, primary, fallback)
        model_url = data.draw(
            st.builds(lambda h: f"http://{h}:{listener.port}/", st.sampled_from(LOOPBACK_HOSTS)),
            label="url the model asks for",
        )
        asyncio.run(_try(document, env, agents, openai_server, model_url))
        asyncio.run(asyncio.sleep(0.05))  # a process started in the background would show
    assert not canary.exists(), document
    assert listener.connections == 0, document

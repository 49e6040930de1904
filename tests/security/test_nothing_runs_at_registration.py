"""Registered agents are untrusted code: validating and building one runs nothing it names.

``POST /v1/agents`` checks a document by building it (``AgentCatalog._check_buildable``), so
building must start no process and open no connection of the document's choosing: MCP
servers connect on first use (a run, a tool listing), after the policy has had its say.
Everything here is real: a stdio command that would leave a canary file, a loopback TCP
listener counting the connections it accepts, the SDK's MCP server from tests/support.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from astromesh.channels import ServerSettings, create_app
from astromesh.config import load_text
from astromesh.config.tools import AnyTool
from astromesh.executors.driver import StepDriver, folder_agents
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.security.grants import Grants
from astromesh.stores.memory import MemoryBackend
from astromesh.tools.base import ToolsetUnavailable
from astromesh.tools.factory import build_tools
from astromesh.tools.registry import ToolRegistry, build_registry
from astromesh.tools.ssrf import SSRFGuard
from tests.support.agents import agent_document, primary, python_tool, write_agent
from tests.support.mcp_server import stdio_command
from tests.support.model_servers import Reply, ScriptedOpenAIServer


class Listener:
    """A loopback TCP server that only counts the connections it accepts (and drops them)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> Listener:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()

    async def settle(self) -> int:
        """Connections accepted so far, after giving pending ones (a subprocess, a background
        probe) time to arrive."""
        await asyncio.sleep(0.3)
        return self.accepted

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    server = await Listener().start()
    yield server
    await server.close()


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir()
    return folder


@pytest.fixture
async def make_runtime(agents_dir: Path) -> AsyncIterator[Callable[..., AgentRuntime]]:
    opened: list[AgentRuntime] = []

    def make(state: MemoryBackend | None = None) -> AgentRuntime:
        runtime = AgentRuntime(agents_dir, env={}, state=state or MemoryBackend())
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        await runtime.close()


def canary_tool(canary: Path) -> dict[str, Any]:
    """The finding's stdio MCP tool: a shell command that would create ``canary``."""
    return {
        "type": "mcp",
        "name": "shell",
        "transport": "stdio",
        "command": "/bin/sh",
        "args": ["-c", f"id > {shlex.quote(str(canary))}"],
    }


def reaching_tools(listener: Listener) -> list[dict[str, Any]]:
    """Tools whose configs name the listener: an MCP server over HTTP and a webhook."""
    return [
        {"type": "mcp", "name": "remote", "url": f"{listener.url}/mcp"},
        {
            "type": "webhook",
            "name": "hook",
            "url": f"{listener.url}/hook",
            "allow_private_network": True,
        },
    ]


def reaching_model(listener: Listener) -> dict[str, Any]:
    """A model on the listener, health-checked every second (the background loop's work)."""
    return {**primary(listener.url), "routing": {"health_check_interval": 1}}


class StartCounter:
    """A stdio command that notes each start in a file, then runs the real MCP server from
    tests/support, or exits at once while the ``down`` file exists (a server that fails)."""

    def __init__(self, folder: Path) -> None:
        self.starts = folder / "starts.txt"
        self.down = folder / "down"

    def tool(self, **fields: Any) -> dict[str, Any]:
        command, args = stdio_command()
        server = " ".join(shlex.quote(part) for part in [command, *args])
        script = (
            f"echo start >> {shlex.quote(str(self.starts))}; "
            f"if [ -e {shlex.quote(str(self.down))} ]; then exit 3; fi; exec {server}"
        )
        return {
            "type": "mcp",
            "name": "math",
            "command": "/bin/sh",
            "args": ["-c", script],
            "allowed_tools": ["add"],
            **fields,
        }

    @property
    def count(self) -> int:
        return len(self.starts.read_text().splitlines()) if self.starts.exists() else 0


# -- building runs nothing ------------------------------------------------------------------


async def test_building_a_file_agent_starts_no_command_and_connects_nowhere(
    agents_dir, make_runtime, listener, tmp_path
):
    canary = tmp_path / "canary"
    write_agent(
        agents_dir,
        model=reaching_model(listener),
        tools=[canary_tool(canary), *reaching_tools(listener)],
    )
    runtime = make_runtime()
    agent = await runtime.get("helper")
    assert agent.tools.pending == ["shell", "remote"]
    assert await runtime.health_checks.probe_due() == float("inf")  # nothing to probe
    assert await listener.settle() == 0
    assert not canary.exists()
    await runtime.close()  # closing what was never opened opens nothing either
    assert await listener.settle() == 0 and not canary.exists()


async def test_building_a_document_through_the_runtime_runs_nothing(
    make_runtime, listener, tmp_path
):
    canary = tmp_path / "canary"
    document = agent_document(
        "posted",
        model=reaching_model(listener),
        tools=[canary_tool(canary), *reaching_tools(listener)],
    )
    loaded = load_text(json.dumps(document), source="<test>", env={})
    assert not loaded.errors
    runtime = make_runtime()
    agent = await runtime.build(loaded.agents["posted"])
    await agent.aclose()
    await runtime.health_checks.probe_due()
    assert await listener.settle() == 0
    assert not canary.exists()


async def test_registering_through_the_api_runs_nothing(agents_dir, listener, tmp_path):
    # An operator who allowed everything the document names: it registers (so it is built),
    # and still nothing connects until first use.
    allowed = f"127.0.0.1:{listener.port}"
    env = {
        "ASTROMESH_REGISTRATION_TOOL_TYPES": "mcp,webhook",
        "ASTROMESH_REGISTRATION_MCP_URLS": f"{listener.url}/mcp",
        "ASTROMESH_REGISTRATION_PRIVATE_NETWORK": "true",
        "ASTROMESH_REGISTRATION_NETWORK_HOSTS": allowed,
        "ASTROMESH_REGISTRATION_MODEL_HOSTS": allowed,
    }
    runtime = AgentRuntime(agents_dir, env=env, state=MemoryBackend())
    app = create_app(runtime, ServerSettings())
    canary = tmp_path / "canary"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        reaching = agent_document(
            "reaching", model=reaching_model(listener), tools=reaching_tools(listener)
        )
        created = await client.post("/v1/agents", json=reaching)
        assert created.status_code == 201, created.text
        updated = await client.put("/v1/agents/reaching", json=reaching)
        assert updated.status_code == 200, updated.text
        # The finding itself: the policy refuses stdio for registered agents (422), and the
        # command does not run on the way to saying so.
        shell = agent_document("shell", tools=[canary_tool(canary)])
        answered = await client.post("/v1/agents", json=shell)
        assert answered.status_code == 422, answered.text
        await runtime.health_checks.probe_due()
        assert await listener.settle() == 0
        assert not canary.exists()
    await app.state.services.aclose()
    await runtime.close()


# -- first use --------------------------------------------------------------------------------


async def test_a_file_agent_connects_its_mcp_server_on_its_first_run(
    agents_dir, make_runtime, openai_server, tmp_path
):
    server = StartCounter(tmp_path)
    write_agent(agents_dir, model=primary(openai_server.url), tools=[server.tool()])
    runtime = make_runtime()
    agent = await runtime.get("helper")
    assert server.count == 0 and agent.tools.pending == ["math"]

    openai_server.push(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply("42"), Reply("ok"))
    run = await runtime.run("helper", "40 + 2?")
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert [t["function"]["name"] for t in openai_server.requests[0]["tools"]] == ["add"]
    [call] = [s.data for s in run.steps if s.type == "tool_call"]
    assert call["ok"] and call["result"] == "42" and call["permitted"]
    assert server.count == 1 and agent.tools.pending == []

    again = await runtime.run("helper", "still there?")
    assert again.status is RunStatus.SUCCEEDED and server.count == 1  # one session, kept


async def test_concurrent_first_runs_share_one_connection(
    agents_dir, make_runtime, openai_server, tmp_path
):
    server = StartCounter(tmp_path)
    write_agent(agents_dir, model=primary(openai_server.url), tools=[server.tool()])
    runtime = make_runtime()
    openai_server.push(*(Reply("ok") for _ in range(4)))
    runs = await asyncio.gather(*(runtime.run("helper", f"q{i}") for i in range(4)))
    assert [run.status for run in runs] == [RunStatus.SUCCEEDED] * 4
    assert server.count == 1
    assert all(
        [t["function"]["name"] for t in request["tools"]] == ["add"]
        for request in openai_server.requests
    )


async def test_a_server_that_cannot_start_fails_the_run_and_the_next_run_retries(
    agents_dir, make_runtime, openai_server, tmp_path
):
    server = StartCounter(tmp_path)
    server.down.touch()
    write_agent(agents_dir, model=primary(openai_server.url), tools=[server.tool()])
    runtime = make_runtime()

    failed = await runtime.run("helper", "40 + 2?")
    assert failed.status is RunStatus.FAILED
    assert failed.error.startswith("tool 'math': cannot connect to the MCP server (/bin/sh -c ")
    assert [s.data["code"] for s in failed.steps if s.type == "stopped"] == ["tools_unavailable"]
    assert openai_server.requests == [] and server.count == 1  # no model call without tools

    server.down.unlink()
    openai_server.push(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply("42"))
    run = await runtime.run("helper", "40 + 2?")
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.answer == "42" and server.count == 2


async def test_an_allowlist_naming_a_tool_the_server_lacks_is_reported_at_first_use(
    agents_dir, make_runtime, tmp_path
):
    server = StartCounter(tmp_path)
    write_agent(agents_dir, tools=[server.tool(allowed_tools=["add", "ad"])])
    runtime = make_runtime()
    await runtime.get("helper")  # builds: the server is not asked yet
    run = await runtime.run("helper", "hi")
    assert run.status is RunStatus.FAILED
    assert "allowed_tools names ad, which the MCP server does not offer" in run.error
    assert [s.data["code"] for s in run.steps if s.type == "stopped"] == ["configuration_error"]


async def test_a_server_tool_clashing_with_another_tool_fails_the_run_at_first_use(
    agents_dir, make_runtime, tmp_path
):
    server = StartCounter(tmp_path)
    write_agent(agents_dir, tools=[python_tool("add", "add"), server.tool()])
    runtime = make_runtime()
    for attempt in (1, 2):  # not cached: the server may have renamed its tool meanwhile
        run = await runtime.run("helper", "hi")
        assert run.status is RunStatus.FAILED
        assert run.error == "tool 'math': tool name(s) add are used twice"
        assert server.count == attempt


async def test_the_tool_executor_of_a_fresh_container_connects_before_its_call(
    agents_dir, openai_server, tmp_path
):
    """Step Functions: ``step`` ran in one container, the call runs in another (a fresh
    runtime on the same store), whose first use of the server is that call."""
    server = StartCounter(tmp_path)
    write_agent(agents_dir, model=primary(openai_server.url), tools=[server.tool()])
    state = MemoryBackend()
    stepper = AgentRuntime(agents_dir, env={}, state=state)
    executor = AgentRuntime(agents_dir, env={}, state=state)
    try:
        openai_server.push(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply("42"))
        run = await state.runs.create(RunState(agent="helper", query="40 + 2?"))
        steps = StepDriver(state.runs, folder_agents(stepper.get))
        await steps.prepare(run.id)
        assert (await steps.step(run.id))["next"] == "act"
        assert server.count == 1

        acted = await StepDriver(state.runs, folder_agents(executor.get)).act(run.id, "call_1")
        assert acted["ok"] and server.count == 2
        [result] = (await state.runs.get_results(run.id, ["call_1"])).values()
        assert result.content == "42"

        await steps.observe(run.id, [acted])
        assert (await steps.step(run.id))["next"] == "finish"
        assert (await steps.finalize(run.id))["status"] == "succeeded"
    finally:
        await stepper.close()
        await executor.close()


async def test_a_swarm_members_mcp_tools_load_with_the_swarm(
    agents_dir, make_runtime, openai_server, tmp_path
):
    server = StartCounter(tmp_path)
    with ScriptedOpenAIServer() as billing:
        write_agent(agents_dir, "triage", model=primary(openai_server.url))
        write_agent(agents_dir, "billing", model=primary(billing.url), tools=[server.tool()])
        write_agent(
            agents_dir,
            "desk",
            model=primary(openai_server.url),
            orchestration={"pattern": "swarm", "agents": ["triage", "billing"]},
        )
        runtime = make_runtime()
        desk = await runtime.get("desk")
        assert server.count == 0 and desk.tools.pending == ["billing/*"]
        openai_server.push(Reply(tool_calls=[("handoff", {"agent": "billing"})]))
        billing.push(Reply(tool_calls=[("add", {"a": 40, "b": 2})]), Reply("42"))
        run = await runtime.run("desk", "40 + 2?")
    assert run.status is RunStatus.SUCCEEDED, run.error
    [call] = [s.data for s in run.steps if s.type == "tool_call"]
    assert (call["name"], call["result"], call["permitted"]) == ("billing/add", "42", True)
    assert server.count == 1


# -- through the SSRF guard -------------------------------------------------------------------


def remote_mcp(listener: Listener) -> Any:
    return TypeAdapter(AnyTool).validate_python(
        {"type": "mcp", "name": "remote", "url": f"{listener.url}/mcp"}
    )


async def test_a_guarded_mcp_connection_to_loopback_is_refused_before_connecting(listener):
    async with AsyncExitStack() as stack:
        [toolset] = await build_tools(remote_mcp(listener), exit_stack=stack, guard=SSRFGuard())
        registry = ToolRegistry(exit_stack=stack)
        registry.add_toolset(toolset)
        with pytest.raises(ToolsetUnavailable, match="a loopback address"):
            await registry.ensure_ready()
    assert await listener.settle() == 0


async def test_an_agents_network_grants_guard_its_mcp_connections(listener):
    """``permissions.network.allowed`` of a file agent (or the policy of a registered one)
    becomes the MCP connection's guard: a host outside it is never connected to."""
    registry = await build_registry(
        [remote_mcp(listener)],
        allowed_actions=None,
        grants=Grants(network_hosts=("mcp.example.com",)),
    )
    try:
        with pytest.raises(ToolsetUnavailable, match="not in the allowed hosts"):
            await registry.ensure_ready()
    finally:
        await registry.aclose()
    assert await listener.settle() == 0


def test_the_canary_is_live(tmp_path):
    """What the build must not do, done on purpose, does leave the file: an absent canary
    above means the command did not run, not that it could not."""
    canary = tmp_path / "canary"
    tool = canary_tool(canary)
    subprocess.run([tool["command"], *tool["args"]], check=True)
    assert canary.exists()


# -- listing is a first use ------------------------------------------------------------------


async def test_listing_tools_connects_mcp_servers_and_reports_one_that_is_down(
    agents_dir, tmp_path
):
    up, down = StartCounter(tmp_path / "up"), StartCounter(tmp_path / "down")
    (tmp_path / "up").mkdir()
    (tmp_path / "down").mkdir()
    down.down.touch()
    write_agent(agents_dir, "calc", tools=[up.tool()])
    write_agent(agents_dir, "broken", tools=[down.tool(name="numbers")])
    runtime = AgentRuntime(agents_dir, env={}, state=MemoryBackend())
    app = create_app(runtime, ServerSettings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        tools = (await client.get("/v1/tools")).json()["tools"]
    await app.state.services.aclose()
    await runtime.close()
    by_agent = {tool["agent"]: tool for tool in tools}
    assert len(tools) == 2
    assert by_agent["calc"]["name"] == "add" and by_agent["calc"]["type"] == "mcp"
    assert by_agent["calc"]["available"] and by_agent["calc"]["parameters"]["required"] == [
        "a",
        "b",
    ]
    broken = by_agent["broken"]
    assert (broken["name"], broken["type"], broken["available"]) == ("numbers", "mcp", False)
    assert "cannot connect to the MCP server" in broken["error"]
    assert (up.count, down.count) == (1, 1)

"""MCP tools against a real MCP server written with the official SDK (tests/support/mcp_server.py),
over stdio (a subprocess) and streamable HTTP (uvicorn on 127.0.0.1, in a subprocess).

Building (``build_tools``) gives a pending :class:`MCPToolset`; nothing connects until its
``load()`` (what ``ToolRegistry.ensure_ready`` calls on first use).

Starting a stdio server costs seconds (the SDK's import), so the tests that only call tools
share one connection per transport (module-scoped, on the module's event loop); the tests
about start-up, environment and shutdown make their own.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.models.types import ToolCall
from astromesh.tools import ToolRegistry
from astromesh.tools.base import ToolContext, ToolsetUnavailable
from astromesh.tools.factory import build_tool, build_tools
from astromesh.tools.mcp import MCPServerTool, MCPToolset
from astromesh.tools.ssrf import SSRFGuard
from tests.support.mcp_server import MCPHttpServer, stdio_command

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")
SERVED = {"add", "echo", "fail", "slow", "env_value", "header"}

pytestmark = pytest.mark.asyncio(loop_scope="module")


def mcp_config(**fields):
    return TypeAdapter(AnyTool).validate_python({"type": "mcp", "name": "test_server", **fields})


def stdio_config(**fields):
    command, args = stdio_command()
    return mcp_config(transport="stdio", command=command, args=args, **fields)


async def connect(cfg, exit_stack, **kwargs):
    """Build the config's toolset (closed with ``exit_stack``) and load it: its tools."""
    [toolset] = await build_tools(cfg, exit_stack=exit_stack)
    assert isinstance(toolset, MCPToolset) and toolset.connection is None
    for name, value in kwargs.items():
        setattr(toolset, name, value)
    return await toolset.load()


@pytest.fixture(scope="module")
def http_server():
    with MCPHttpServer() as server:
        yield server


@pytest.fixture(params=["stdio", "streamable_http"])
def any_config(request, http_server):
    if request.param == "stdio":
        return stdio_config
    return lambda **fields: mcp_config(url=http_server.url, **fields)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def connected(http_server):
    """One live connection per transport: ``{"stdio": tools, "streamable_http": tools}``."""
    async with AsyncExitStack() as exit_stack:
        yield {
            "stdio": await connect(stdio_config(), exit_stack),
            "streamable_http": await connect(mcp_config(url=http_server.url), exit_stack),
        }


@pytest.fixture(params=["stdio", "streamable_http"])
def served(request, connected):
    return connected[request.param]


@pytest_asyncio.fixture(loop_scope="module")
async def stack():
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


async def test_tools_are_listed_at_start_up_with_their_schemas(served):
    by_name = {tool.name: tool for tool in served}
    assert set(by_name) == SERVED
    add = by_name["add"]
    assert isinstance(add, MCPServerTool)
    assert add.description == "Add two integers."
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"


async def test_tools_are_called_by_name(served):
    registry = ToolRegistry(served)
    added = await registry.call(ToolCall(id="c1", name="add", arguments={"a": 2, "b": 40}), CTX)
    echoed = await registry.call(ToolCall(id="c2", name="echo", arguments={"text": "hé"}), CTX)
    assert added.ok and added.content == "42"
    assert echoed.ok and echoed.content == "hé"


async def test_concurrent_calls_share_the_session(served):
    tools = {t.name: t for t in served}
    results = await asyncio.gather(*(tools["add"].call({"a": i, "b": 1}, CTX) for i in range(8)))
    assert [r.content for r in results] == [str(i + 1) for i in range(8)]


async def test_server_errors_become_failed_results(served):
    tools = {t.name: t for t in served}
    failed = await tools["fail"].call({"message": "the printer is on fire"}, CTX)
    invalid = await tools["add"].call({"a": "two", "b": 1}, CTX)
    assert not failed.ok
    assert "the printer is on fire" in failed.content and "MCPToolFailed" in failed.content
    assert not invalid.ok and invalid.content.startswith("invalid arguments for tool 'add'")


async def test_the_allowlist_limits_the_tools(http_server, stack):
    cfg = mcp_config(url=http_server.url, allowed_tools=["add", "echo"])
    tools = await connect(cfg, stack)
    assert sorted(t.name for t in tools) == ["add", "echo"]


async def test_an_allowlist_naming_an_unknown_tool_is_a_configuration_error_at_connect(
    http_server, stack
):
    cfg = mcp_config(url=http_server.url, allowed_tools=["add", "ad"])
    [toolset] = await build_tools(cfg, exit_stack=stack)  # building says nothing yet
    with pytest.raises(ConfigurationError, match=r"allowed_tools names ad, which the MCP server"):
        await toolset.load()
    assert toolset.connection is None  # the session it opened to list is closed again


async def test_a_slow_call_times_out_as_a_failed_result(served):
    slow = {t.name: t for t in served}["slow"]
    slow.connection.call_timeout = 0.5
    try:
        result = await slow.call({"seconds": 5}, CTX)
        quick = await slow.call({"seconds": 0}, CTX)
    finally:
        slow.connection.call_timeout = 60.0
    assert not result.ok and "no answer within 0.5s" in result.content
    assert quick.ok and quick.content == "done"


async def test_closing_the_exit_stack_ends_the_session(any_config):
    async with AsyncExitStack() as stack:
        tools = {t.name: t for t in await connect(any_config(), stack)}
        assert (await tools["echo"].call({"text": "x"}, CTX)).ok
        connection = tools["echo"].connection
        assert connection.connected
    assert not connection.connected
    after = await tools["echo"].call({"text": "x"}, CTX)
    assert not after.ok and "is not connected" in after.content


async def test_stdio_servers_get_only_the_configured_environment(stack, monkeypatch):
    monkeypatch.setenv("ASTROMESH_PARENT_SECRET", "do-not-leak")
    tools = {t.name: t for t in await connect(stdio_config(env={"GREETING": "hola"}), stack)}
    greeting = await tools["env_value"].call({"name": "GREETING"}, CTX)
    leaked = await tools["env_value"].call({"name": "ASTROMESH_PARENT_SECRET"}, CTX)
    assert greeting.content == "hola"
    assert leaked.ok and leaked.content == ""
    assert (await tools["header"].call({"name": "x"}, CTX)).content == ""


async def test_http_servers_get_the_configured_headers(http_server, stack):
    cfg = mcp_config(url=http_server.url, headers={"X-Tenant": "acme"})
    tools = {t.name: t for t in await connect(cfg, stack)}
    assert (await tools["header"].call({"name": "x-tenant"}, CTX)).content == "acme"


async def test_a_server_that_cannot_start_fails_its_load_and_the_next_load_tries_again(stack):
    cfg = mcp_config(transport="stdio", command="/nonexistent/mcp-server")
    [toolset] = await build_tools(cfg, exit_stack=stack)
    for attempt in (1, 2):
        with pytest.raises(ToolsetUnavailable, match="cannot connect to the MCP server"):
            await toolset.load()
        assert toolset.attempts == attempt and toolset.connection is None


async def test_an_unreachable_url_fails_the_load(closed_port_url, stack):
    with pytest.raises(ToolsetUnavailable, match="cannot connect to the MCP server"):
        await connect(mcp_config(url=closed_port_url + "/mcp"), stack, startup_timeout=10)


async def test_a_closed_toolset_does_not_connect_again(http_server):
    async with AsyncExitStack() as stack:
        [toolset] = await build_tools(mcp_config(url=http_server.url), exit_stack=stack)
    with pytest.raises(ToolsetUnavailable, match="was closed"):
        await toolset.load()
    assert toolset.attempts == 0


# -- through the SSRF guard -------------------------------------------------------------------


async def test_a_guard_refuses_a_loopback_server(http_server, stack):
    guard = SSRFGuard()
    toolset = MCPToolset(mcp_config(url=http_server.url), guard=guard, startup_timeout=10)
    stack.push_async_callback(toolset.aclose)
    with pytest.raises(ToolsetUnavailable, match="loopback address") as refused:
        await toolset.load()
    assert "BlockedDestination" in str(refused.value)


async def test_a_guard_checks_the_resolved_address_of_a_name(http_server, stack):
    port = http_server.url.split(":")[2].split("/")[0]

    async def rebinding(host, _port):  # a public-looking name that points at loopback
        return ["127.0.0.1"]

    cfg = mcp_config(url=f"http://mcp.example.com:{port}/mcp")
    toolset = MCPToolset(cfg, guard=SSRFGuard(resolver=rebinding), startup_timeout=10)
    stack.push_async_callback(toolset.aclose)
    with pytest.raises(ToolsetUnavailable, match=r"mcp\.example\.com: it resolves to 127\.0\.0\.1"):
        await toolset.load()


async def test_a_guard_that_allows_the_address_connects_through_it(http_server, stack):
    port = http_server.url.split(":")[2].split("/")[0]
    resolved = []

    async def resolver(host, _port):
        resolved.append(host)
        return ["127.0.0.1"]

    # (the test server accepts only a loopback Host header: its DNS-rebinding protection)
    cfg = mcp_config(url=f"http://localhost:{port}/mcp", headers={"X-Tenant": "acme"})
    guard = SSRFGuard(allow_private_network=True, resolver=resolver)
    toolset = MCPToolset(cfg, guard=guard)
    stack.push_async_callback(toolset.aclose)
    tools = {t.name: t for t in await toolset.load()}
    assert (await tools["header"].call({"name": "x-tenant"}, CTX)).content == "acme"
    assert resolved and set(resolved) == {"localhost"}  # connections went through the guard


async def test_build_tool_points_mcp_configs_to_build_tools():
    with pytest.raises(ConfigurationError, match="build_tools"):
        build_tool(stdio_config())

"""Upstream's ``spec.permissions`` (network, filesystem, execution) enforced for file agents
too, where the tools connect and read: they narrow, and never widen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from astromesh.errors import ConfigurationError
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import PRICED_MODEL, write_agent, write_priced_provider
from tests.support.canaries import LoopbackListener
from tests.support.http_receivers import ScriptedHTTPServer
from tests.support.model_servers import Reply, ScriptedOpenAIServer


@pytest.fixture
def folder(tmp_path: Path, openai_server: ScriptedOpenAIServer) -> Path:
    agents = tmp_path / "agents"
    agents.mkdir()
    write_priced_provider(agents, openai_server.url)
    return agents


async def run_once(folder: Path, query: str = "go") -> Any:
    async with AgentRuntime(folder, env={}, state=MemoryBackend()) as runtime:
        return await runtime.run("helper", query)


def tool_results(run: Any) -> list[dict[str, Any]]:
    return [step.data for step in run.steps if step.type == "tool_call"]


async def test_a_network_allowlist_narrows_even_allowed_private_tools(
    folder: Path, openai_server: ScriptedOpenAIServer
) -> None:
    with LoopbackListener() as listener, ScriptedHTTPServer() as allowed:
        write_agent(
            folder,
            model=PRICED_MODEL,
            tools=[
                {
                    "name": "inside",
                    "type": "webhook",
                    "url": f"{allowed.url}/ok",
                    "allow_private_network": True,
                },
                {
                    "name": "http_get",
                    "type": "builtin",
                    "config": {"allow_private_network": True},
                },
            ],
            permissions={"network": {"allowed": [f"127.0.0.1:{allowed.port}"]}},
        )
        openai_server.push(
            Reply(tool_calls=[("inside", {}), ("http_get", {"url": f"{listener.url}/x"})]),
            Reply("done"),
        )
        run = await run_once(folder)

        # A configured URL outside the list is refused when the agent is built.
        write_agent(
            folder,
            model=PRICED_MODEL,
            tools=[
                {
                    "name": "outside",
                    "type": "webhook",
                    "url": f"{listener.url}/x",
                    "allow_private_network": True,
                }
            ],
            permissions={"network": {"allowed": [f"127.0.0.1:{allowed.port}"]}},
        )
        with pytest.raises(ConfigurationError, match="not in the allowed hosts"):
            await run_once(folder)
    assert [r["ok"] for r in tool_results(run)] == [True, False]
    assert "not in the allowed hosts" in str(tool_results(run)[1])
    assert listener.connections == 0
    assert len(allowed.requests) == 1


async def test_execution_tool_types_refuses_other_types_at_build(folder: Path) -> None:
    write_agent(
        folder,
        model=PRICED_MODEL,
        tools=[{"name": "hook", "type": "webhook", "url": "https://example.com/"}],
        permissions={"execution": {"tool_types": ["builtin"]}},
    )
    with pytest.raises(ConfigurationError, match="type 'webhook' are not allowed"):
        await run_once(folder)


async def test_dry_run_describes_side_effects_instead_of_making_them(
    folder: Path, openai_server: ScriptedOpenAIServer
) -> None:
    with ScriptedHTTPServer() as target:
        write_agent(
            folder,
            model=PRICED_MODEL,
            tools=[
                {
                    "name": "charge",
                    "type": "webhook",
                    "url": f"{target.url}/charge",
                    "allow_private_network": True,
                },
                {"name": "calculator", "type": "builtin"},
            ],
            permissions={"execution": {"dry_run": True}},
        )
        openai_server.push(
            Reply(tool_calls=[("charge", {"amount": 5}), ("calculator", {"expression": "2+3"})]),
            Reply("done"),
        )
        run = await run_once(folder)
    charge, calc = tool_results(run)
    assert charge["ok"] and "dry_run" in str(charge["result"])
    assert calc["ok"] and "5" in str(calc["result"])
    assert target.requests == []


async def test_filesystem_read_narrows_read_file_roots(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "private").mkdir()
    write_agent(
        folder,
        model=PRICED_MODEL,
        tools=[
            {"name": "read_file", "type": "builtin", "config": {"root": str(tmp_path / "private")}}
        ],
        permissions={"filesystem": {"read": [str(tmp_path / "public")]}},
    )
    with pytest.raises(ConfigurationError, match="outside the folders this agent may read"):
        await run_once(folder)


async def test_no_agent_reads_proc_even_from_a_root_of_slash(
    folder: Path, openai_server: ScriptedOpenAIServer
) -> None:
    write_agent(
        folder,
        model=PRICED_MODEL,
        tools=[{"name": "read_file", "type": "builtin", "config": {"root": "/"}}],
    )
    openai_server.push(
        Reply(tool_calls=[("read_file", {"path": "proc/self/environ"})]),
        Reply(tool_calls=[("read_file", {"path": "sys/kernel/hostname"})]),
        Reply("done"),
    )
    run = await run_once(folder)
    assert [r["ok"] for r in tool_results(run)] == [False, False]

    write_agent(
        folder,
        model=PRICED_MODEL,
        tools=[{"name": "read_file", "type": "builtin", "config": {"root": "/proc/self"}}],
    )
    with pytest.raises(ConfigurationError, match="no agent may read"):
        await run_once(folder)

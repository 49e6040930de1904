"""``astromesh traces`` and ``astromesh trace ID`` in a subprocess, as a user runs them,
against a real server (uvicorn on loopback) that ran a ReAct run with a tool."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.channels.conftest import keys_of, make_app  # noqa: F401
from tests.support.agents import primary, python_tool, write_agent
from tests.support.cli_client import astromesh_client
from tests.support.model_servers import Reply

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def served(agents_dir: Path, make_app, openai_server) -> AsyncIterator[tuple[str, str, dict]]:  # noqa: F811
    """A server that ran one run for tenant acme: its URL, acme's key, the run response."""
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    app = make_app()
    key = (await (await keys_of(app)).issue("acme", ["*"])).plaintext
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
        Reply("The sum is 5.", tokens_in=30, tokens_out=6),
    )
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}) as client:
        ran = (await client.post("/v1/agents/helper/run", json={"query": "2 + 3?"})).json()
    try:
        yield url, key, ran
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def astromesh(*args: str, key: str) -> subprocess.CompletedProcess[str]:
    return await astromesh_client(*args, key=key)


async def test_traces_table_and_trace_tree(served) -> None:
    url, key, ran = served
    trace_id = ran["trace"]["trace_id"]

    listed = await astromesh("traces", "--agent", "helper", "--limit", "5", "--url", url, key=key)
    assert listed.returncode == 0, listed.stderr
    assert trace_id in listed.stdout and "succeeded" in listed.stdout and "50/11" in listed.stdout

    shown = await astromesh("trace", trace_id, "--url", url, key=key)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id} · helper · succeeded · 50 in / 11 out")
    root = next(i for i, line in enumerate(lines) if "invoke_agent helper" in line)
    tool = next(i for i, line in enumerate(lines) if "execute_tool add" in line)
    chat = next(line for line in lines if "chat scripted" in line)
    assert root < tool and "ms" in lines[tool]
    assert "20 in / 5 out" in chat or "30 in / 6 out" in chat
    # nested: the tool call is drawn deeper than the run's root
    assert len(lines[tool]) - len(lines[tool].lstrip("│ ├└─")) > len(lines[root]) - len(
        lines[root].lstrip("│ ├└─")
    )
    as_json = await astromesh("trace", ran["run_id"], "--json", "--url", url, key=key)
    assert json.loads(as_json.stdout)["trace_id"] == trace_id

    unknown = await astromesh("trace", "0" * 31 + "1", "--url", url, key=key)
    assert unknown.returncode == 1 and "404" in unknown.stderr

"""``astromesh cost`` in a subprocess, as a user runs it, against a real server (uvicorn on
loopback) whose runs were answered by a scripted priced model: the table's rows and total are
the server's ``GET /v1/usage``; errors exit 1 with the server's message."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from astromesh.auth import Role
from tests.channels.conftest import agents_dir, keys_of, make_app  # noqa: F401
from tests.support.agents import PRICED_MODEL, write_agent, write_priced_provider
from tests.support.cli_client import astromesh_client
from tests.support.model_servers import Reply

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def served(agents_dir: Path, make_app, openai_server) -> AsyncIterator[tuple[str, str]]:  # noqa: F811
    """A server with two agents' runs in tenant acme; its URL and acme's key."""
    write_agent(agents_dir, "helper", model=PRICED_MODEL)
    write_agent(agents_dir, "writer", model=PRICED_MODEL)
    write_priced_provider(agents_dir, openai_server.url)
    app = make_app()
    key = (await (await keys_of(app)).issue("acme", ["*"], role=Role.USER)).plaintext
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    openai_server.push(
        Reply("a", tokens_in=40, tokens_out=10),
        Reply("b", tokens_in=20, tokens_out=5),
        Reply("c", tokens_in=10, tokens_out=2),
    )
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}) as client:
        for agent in ("helper", "helper", "writer"):
            ran = await client.post(f"/v1/agents/{agent}/run", json={"query": "hi"})
            assert ran.json()["status"] == "succeeded", ran.text
    try:
        yield url, key
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def astromesh(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    return await astromesh_client(*args, key=key, columns=160)


async def test_cost_by_agent_prints_the_servers_sums(served) -> None:
    url, key = served
    shown = await astromesh("cost", "--group-by", "agent", "--url", url, key=key)
    assert shown.returncode == 0, shown.stderr
    rows = {
        cells[0]: cells[1:]
        for line in shown.stdout.splitlines()
        if len(cells := line.replace("│", " ").split()) == 6
    }
    # agent: runs, calls, tokens in, tokens out, USD (1000 and 2000 USD per million tokens)
    assert rows["helper"] == ["2", "2", "60", "15", "0.090000"]
    assert rows["writer"] == ["1", "1", "10", "2", "0.014000"]
    assert rows["total"] == ["3", "3", "70", "17", "0.104000"]
    assert "tenant acme" in shown.stdout


async def test_cost_json_is_get_v1_usage(served) -> None:
    url, key = served
    shown = await astromesh("cost", "--json", "--agent", "writer", "--url", url, key=key)
    assert shown.returncode == 0, shown.stderr
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}) as client:
        direct = await client.get("/v1/usage", params={"group_by": "day", "agent": "writer"})
    printed = json.loads(shown.stdout)
    assert printed["groups"] == direct.json()["groups"] and printed["total"]["runs"] == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--group-by", "week"), "group_by"),
        (("--from", "yesterday"), "from"),
        (("--tenant", "globex"), "403"),
    ],
)
async def test_cost_refusals_exit_1_with_the_servers_reason(served, args, said) -> None:
    url, key = served
    shown = await astromesh("cost", *args, "--url", url, key=key)
    assert shown.returncode == 1 and said in shown.stderr, shown.stderr


async def test_cost_without_a_key_on_a_closed_server_names_the_401(served) -> None:
    url, _key = served
    shown = await astromesh("cost", "--url", url)
    assert shown.returncode == 1 and "401" in shown.stderr

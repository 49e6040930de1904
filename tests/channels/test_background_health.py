"""The local server keeps its models' health evidence fresh in the background while it
serves (astromesh.models.health); an app given someone else's runtime leaves it alone."""

from __future__ import annotations

import asyncio

from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply

HEALTH_PATHS = {"/v1/models", "/health"}


def checked_model(url: str) -> dict:
    """The scripted server as primary, its health due every second."""
    return {**primary(url), "routing": {"health_check_interval": 1}}


async def probes_within(server, seconds: float) -> int:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if HEALTH_PATHS & set(server.get_paths):
            break
        await asyncio.sleep(0.05)
    return sum(path in HEALTH_PATHS for path in server.get_paths)


async def test_the_dev_server_probes_its_models_in_the_background(agents_dir, openai_server):
    write_agent(agents_dir, model=checked_model(openai_server.url))
    openai_server.push(Reply("Hi."))
    runtime = AgentRuntime(agents_dir, env={}, state=MemoryBackend())
    app = create_app(runtime, ServerSettings(), owns_runtime=True)

    async with app.router.lifespan_context(app):
        await runtime.run("helper", "hello", session_id="s")  # builds the agent's router
        openai_server.get_paths.clear()
        assert await probes_within(openai_server, 4.0) >= 1

    openai_server.get_paths.clear()
    await asyncio.sleep(1.5)
    assert openai_server.get_paths == []  # the loop stopped with the server


async def test_an_app_given_a_runtime_does_not_start_the_loop(agents_dir, openai_server):
    write_agent(agents_dir, model=checked_model(openai_server.url))
    openai_server.push(Reply("Hi."))
    runtime = AgentRuntime(agents_dir, env={}, state=MemoryBackend())
    app = create_app(runtime, ServerSettings())

    async with app.router.lifespan_context(app):
        await runtime.run("helper", "hello", session_id="s")
        openai_server.get_paths.clear()
        assert await probes_within(openai_server, 2.5) == 0
    await runtime.close()

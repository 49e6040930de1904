"""StepDriver's agents: looked up once per run in a container, by tenant, and afresh for a run
started after its agent was registered again.

The driver resolves agents as the step loop's Lambda functions do (``agent_source``: the
registry first, then the agents folder) over a SQLite store; a second catalog on the same
registry plays the ``api`` function that registers, updates and deletes agents, so the
driver's container learns of them only through the registry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astromesh.agent import Agent
from astromesh.channels.catalog import AgentCatalog
from astromesh.channels.control_plane import agent_source, open_control_plane
from astromesh.channels.settings import ServerSettings
from astromesh.executors.driver import StepDriver
from astromesh.runs.state import RunState
from astromesh.runtime import AgentRuntime
from astromesh.security import RegistrationPolicy
from tests.support.agents import agent_document, primary, write_agent
from tests.support.model_servers import Reply, ScriptedOpenAIServer

POLICY = {"ASTROMESH_REGISTRATION_MODEL_HOSTS": "127.0.0.1"}


class Container:
    """The step functions' side: a runtime, its driver, and how often it asked for an agent."""

    def __init__(self, runtime: AgentRuntime, driver: StepDriver, lookups: list[tuple]) -> None:
        self.runtime, self.driver, self.lookups = runtime, driver, lookups

    async def new_run(self, agent: str, tenant: str) -> RunState:
        runs = (await self.runtime.state()).runs
        return await runs.create(RunState(agent=agent, query="go", tenant=tenant))

    async def system_prompt(self, run: RunState) -> str:
        await self.driver.prepare(run.id)
        stored = await (await self.runtime.state()).runs.get(run.id)
        return stored.messages[0].content


@pytest.fixture
async def sides(
    tmp_path: Path, openai_server: ScriptedOpenAIServer
) -> AsyncIterator[tuple[AgentCatalog, Container]]:
    """``(api, container)``: the api's catalog and a step-function container, one store."""
    write_agent(tmp_path / "agents", model=primary(openai_server.url))  # the file agent
    env = {**POLICY, "ASTROMESH_STATE_PATH": str(tmp_path / "state.db")}
    api_runtime = AgentRuntime(tmp_path / "agents", env=env)
    control = await open_control_plane(api_runtime)
    api = AgentCatalog(
        api_runtime, control.registry, policy=RegistrationPolicy.for_runtime(api_runtime)
    )
    runtime = AgentRuntime(tmp_path / "agents", env=env)
    source, close = await agent_source(runtime, ServerSettings.from_env(env, lambda_=True))
    lookups: list[tuple] = []

    async def counted(name: str, tenant: str) -> Agent:
        lookups.append((name, tenant))
        return await source(name, tenant)

    driver = StepDriver((await runtime.state()).runs, counted)
    yield api, Container(runtime, driver, lookups)
    await close()
    await runtime.close()
    await api.aclose()
    await control.aclose()
    await api_runtime.close()


def posted(url: str, system: str, name: str = "posted") -> str:
    return json.dumps(agent_document(name, model=primary(url), prompts={"system": system}))


async def test_a_run_asks_for_its_agent_once_in_a_container(sides, openai_server):
    api, container = sides
    await api.register(posted(openai_server.url, "Tenant one."), tenant="t1")
    run = await container.new_run("posted", "t1")
    openai_server.push(Reply(tool_calls=[("missing", {})]), Reply("Done."))

    await container.driver.prepare(run.id)
    await container.driver.step(run.id)
    await container.driver.act(run.id, "call_1")
    await container.driver.step(run.id, [{"call_id": "call_1", "ok": False, "child_run_id": None}])
    await container.driver.finalize(run.id)

    done = await (await container.runtime.state()).runs.get(run.id)
    assert (done.status.value, done.answer) == ("succeeded", "Done."), done.error
    assert container.lookups == [("posted", "t1")]


async def test_each_tenant_gets_its_own_namesake_and_no_other_tenants(sides, openai_server):
    api, container = sides
    await api.register(posted(openai_server.url, "Tenant one."), tenant="t1")
    await api.register(posted(openai_server.url, "Tenant two."), tenant="t2")
    one, two = await container.new_run("posted", "t1"), await container.new_run("posted", "t2")

    assert await container.system_prompt(one) == "Tenant one."
    assert await container.system_prompt(two) == "Tenant two."
    stranger = await container.new_run("posted", "t3")  # after both were served
    await container.driver.prepare(stranger.id)
    refused = await (await container.runtime.state()).runs.get(stranger.id)
    assert refused.messages == []
    assert refused.decision is not None and refused.decision["code"] == "not_found"
    assert "Tenant" not in refused.decision["reason"]


async def test_a_run_started_after_an_update_gets_the_new_document(sides, openai_server):
    api, container = sides
    await api.register(posted(openai_server.url, "First."), tenant="t1")
    before = await container.new_run("posted", "t1")
    assert await container.system_prompt(before) == "First."

    await api.update("posted", posted(openai_server.url, "Second."), tenant="t1")
    after = await container.new_run("posted", "t1")
    assert await container.system_prompt(after) == "Second."


async def test_an_agent_deleted_and_registered_again_is_not_served_from_the_old_build(
    sides, openai_server
):
    # Registered again, the agent starts over at revision 1: the revision alone would match
    # what the container built before.
    api, container = sides
    await api.register(posted(openai_server.url, "Old text."), tenant="t1")
    first = await container.new_run("posted", "t1")
    assert await container.system_prompt(first) == "Old text."

    await api.remove("posted", tenant="t1")
    entry = await api.register(posted(openai_server.url, "New text."), tenant="t1")
    assert entry.revision == 1
    second = await container.new_run("posted", "t1")
    assert await container.system_prompt(second) == "New text."

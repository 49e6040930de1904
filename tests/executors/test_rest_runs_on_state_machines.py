"""REST runs as the ``api`` Lambda serves them: synchronous runs on the Express machine, and
agents registered through the API found again by the state machine's functions.

The machines are the real definition executed by moto, their Lambda tasks the real handlers
in ``functions/`` (see tests/support/stepfunctions.py); the store is the side's SQLite file.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from tests.support.agents import agent_document, primary, python_tool
from tests.support.executors import Side
from tests.support.model_servers import Reply
from tests.support.stepfunctions import ORCHESTRATION_STEP, REGION, TOOL_EXECUTOR


def lambda_app(
    side: Side, env: dict[str, str] | None = None, **settings: Any
) -> tuple[AgentRuntime, httpx.AsyncClient]:
    runtime = AgentRuntime(side.agents_dir, env=env or {}, state=side.state)
    app = create_app(runtime, ServerSettings(background_runs=False, **settings))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return runtime, client


@pytest.fixture(autouse=True)
def _region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


async def test_a_sync_run_goes_through_the_express_machine(aws_side: Side, step_functions):
    aws_side.write_agent(tools=[python_tool("add", "add")])
    aws_side.server.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("It is 5."))
    runtime, client = lambda_app(aws_side, express_machine_arn=step_functions.express_arn)
    async with client:
        answer = await client.post("/v1/agents/helper/run", json={"query": "2+3?"})
    await runtime.close()

    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert (run["status"], run["answer"]) == ("succeeded", "It is 5.")
    tool_calls = [i for i in step_functions.invocations if i.function == TOOL_EXECUTOR]
    assert [(i.event["run_id"], i.error) for i in tool_calls] == [(run["run_id"], None)]
    stages = [
        i.event["action"] for i in step_functions.invocations if i.function == ORCHESTRATION_STEP
    ]
    assert stages[0] == "prepare" and stages[-1] == "finalize"


async def test_an_agent_allowed_longer_than_express_runs_in_process(aws_side: Side, step_functions):
    aws_side.write_agent(
        orchestration={"pattern": "react", "max_iterations": 3, "timeout_seconds": 900}
    )
    aws_side.server.push(Reply("Done here."))
    runtime, client = lambda_app(aws_side, express_machine_arn=step_functions.express_arn)
    async with client:
        answer = await client.post("/v1/agents/helper/run", json={"query": "hi"})
    await runtime.close()

    assert answer.json()["answer"] == "Done here."
    assert step_functions.invocations == []


async def test_a_registered_agent_runs_on_the_standard_machine(
    aws_side: Side, step_functions, monkeypatch: pytest.MonkeyPatch
):
    """The step functions find the agent in the registry the API wrote it to."""
    policy = {
        "ASTROMESH_REGISTERED_TOOL_MODULES": "tests.support",
        "ASTROMESH_REGISTRATION_TOOL_TYPES": "python",
        "ASTROMESH_REGISTRATION_MODEL_HOSTS": "127.0.0.1",
    }
    for name, value in policy.items():  # the step functions' policy, read from os.environ
        monkeypatch.setenv(name, value)
    document = agent_document(
        "posted", model=primary(aws_side.server.url), tools=[python_tool("add", "add")]
    )
    aws_side.server.push(Reply(tool_calls=[("add", {"a": 1, "b": 2})]), Reply("Three."))
    runtime, client = lambda_app(
        aws_side,
        env=policy,
        standard_machine_arn=step_functions.standard_arn,
        registered_tool_modules=("tests.support",),
    )
    async with client:
        created = await client.post("/v1/agents", json=document)
        assert created.status_code == 201, created.text
        accepted = await client.post("/v1/agents/posted/run?mode=async", json={"query": "1+2?"})
        run_id = accepted.json()["run_id"]
        deadline = time.monotonic() + 60
        while (run := (await client.get(f"/v1/runs/{run_id}")).json())["status"] == "running":
            assert time.monotonic() < deadline, "the state machine did not finish the run"
            await asyncio.sleep(0.1)
    await runtime.close()

    assert (run["status"], run["answer"]) == ("succeeded", "Three."), run
    assert [s["type"] for s in run["steps"]] == ["prepare", "model_call", "tool_call", "model_call"]

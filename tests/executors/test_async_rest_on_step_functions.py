"""``POST /v1/agents/{name}/run?mode=async`` as a Lambda answers it: 202 at once, then the
run goes on in the Standard state machine (executed by moto, its tasks bound to the real
handlers) and ``GET /v1/runs/{id}`` reads it from the shared store."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from tests.support.agents import python_tool
from tests.support.executors import Side
from tests.support.model_servers import Reply
from tests.support.stepfunctions import REGION


async def test_an_async_rest_run_goes_on_in_the_standard_machine(
    aws_side: Side, step_functions, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws_side.write_agent(tools=[python_tool("add", "add")])
    aws_side.server.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("It is 5."))
    runtime = AgentRuntime(aws_side.agents_dir, env={}, state=aws_side.state)
    settings = ServerSettings(
        background_runs=False,  # as in Lambda: nothing may run after the response
        standard_machine_arn=step_functions.standard_arn,
    )
    transport = httpx.ASGITransport(app=create_app(runtime, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        accepted = await client.post("/v1/agents/helper/run?mode=async", json={"query": "2+3?"})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        deadline = time.monotonic() + 60
        while (run := (await client.get(f"/v1/runs/{run_id}")).json())["status"] == "running":
            assert time.monotonic() < deadline, "the state machine did not finish the run"
            await asyncio.sleep(0.1)
    await runtime.close()

    assert run["status"] == "succeeded" and run["answer"] == "It is 5."
    assert [s["type"] for s in run["steps"]] == ["prepare", "model_call", "tool_call", "model_call"]
    executions = step_functions.client.list_executions(stateMachineArn=step_functions.standard_arn)
    assert [e["name"] for e in executions["executions"]] == [run_id]


async def test_without_a_standard_machine_a_lambda_answers_501(aws_side: Side):
    aws_side.write_agent()
    runtime = AgentRuntime(aws_side.agents_dir, env={}, state=aws_side.state)
    transport = httpx.ASGITransport(app=create_app(runtime, ServerSettings(background_runs=False)))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/v1/agents/helper/run?mode=async", json={"query": "hi"})
    await runtime.close()
    assert answer.status_code == 501
    assert answer.json()["error"]["code"] == "async_runs_unavailable"
    assert "ASTROMESH_SFN_STANDARD_ARN" in answer.json()["error"]["message"]

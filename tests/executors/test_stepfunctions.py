"""StepFunctionsExecutor and the state machine against moto: sync and async starts, payload
sizes with a long conversation, the Retry of transient provider failures, the Catch path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from astromesh.agent import Agent
from astromesh.executors.stepfunctions import StepFunctionsExecutor
from astromesh.runs.events import RunEvent
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, python_tool, write_agent
from tests.support.executors import Side, run_locally, run_on_step_functions
from tests.support.model_servers import Reply
from tests.support.stepfunctions import (
    ORCHESTRATION_STEP,
    LocalStepFunctions,
    largest_payload_per_iteration,
    state_payloads,
    state_transitions,
)

ADD = python_tool("add", "add")
BIG = {"name": "big_text", "type": "python", "handler": "tests.support.loop_tools:big_text"}


@contextlib.asynccontextmanager
async def built_agent(side: Side, name: str = "helper") -> AsyncIterator[Agent]:
    """The agent as the submitting process builds it from the side's documents."""
    runtime = AgentRuntime(side.agents_dir, env={}, state=side.state)
    try:
        yield await runtime.get(name)
    finally:
        await runtime.close()


def new_run(query: str = "What is 2 + 3?") -> RunState:
    return RunState(agent="helper", namespace="tests", query=query, session_id="s1")


async def test_a_synchronous_run_on_the_express_machine(aws_side: Side, step_functions):
    aws_side.write_agent(tools=[ADD])
    aws_side.server.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("5"))
    executor = StepFunctionsExecutor(
        aws_side.state.runs, express_arn=step_functions.express_arn, client=step_functions.client
    )

    events: list[RunEvent] = []

    async def record(event: RunEvent) -> None:
        events.append(event)

    async with built_agent(aws_side) as agent:
        run = await executor.submit(new_run(), agent, wait=True, emit=record)

    assert run.status is RunStatus.SUCCEEDED and run.answer == "5"
    assert (await executor.get(run.id)).model_dump() == run.model_dump()
    assert [e.type for e in events] == ["done"] and events[0].data["answer"] == "5"
    [invocation] = [i for i in step_functions.invocations if i.event.get("action") == "prepare"]
    assert invocation.event == {"action": "prepare", "run_id": run.id}


async def test_an_asynchronous_run_on_the_standard_machine(aws_side: Side, step_functions):
    aws_side.write_agent(tools=[ADD])
    aws_side.server.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("5"))
    executor = StepFunctionsExecutor(
        aws_side.state.runs, standard_arn=step_functions.standard_arn, region="us-east-1"
    )

    async with built_agent(aws_side) as agent:
        started = await executor.submit(new_run(), agent, wait=False)

    assert started.status is RunStatus.RUNNING and started.version == 1
    run = await _until_finished(executor, started.id)
    assert run.status is RunStatus.SUCCEEDED and run.answer == "5"
    arn = f"{step_functions.standard_arn.replace(':stateMachine:', ':execution:')}:{run.id}"
    described = step_functions.client.describe_execution(executionArn=arn)
    assert described["name"] == run.id and json.loads(described["input"]) == {"run_id": run.id}
    assert executor.client is executor.client  # created once, on first use


async def test_an_execution_that_cannot_finalize_still_ends_the_run(
    aws_side: Side, step_functions, monkeypatch, tmp_path
):
    """Every task fails (the functions cannot open their store): the executor fails the run
    with the execution's error, so its caller is never left waiting."""
    aws_side.write_agent(tools=[ADD])
    monkeypatch.setenv("ASTROMESH_STATE_PATH", str(tmp_path / "missing" / "dir" / "runs.db"))
    executor = StepFunctionsExecutor(
        aws_side.state.runs, express_arn=step_functions.express_arn, client=step_functions.client
    )

    async with built_agent(aws_side) as agent:
        run = await executor.submit(RunState(agent="helper", query="boo"), agent, wait=True)

    assert run.status is RunStatus.FAILED
    assert run.error.startswith("execution failed: ")
    assert run.steps[-1].type == "stopped"
    assert (await aws_side.state.runs.get(run.id)).status is RunStatus.FAILED
    failed = [i.event.get("action") for i in step_functions.invocations if i.error]
    assert failed == ["prepare", "finalize"]  # Catch -> FinalizeError, which fails too


async def test_a_run_of_an_unknown_agent_ends_inside_the_machine(aws_side: Side, step_functions):
    """No such agent where the functions look: prepare stores the failure, finalize ends the
    run with it; no task fails."""
    aws_side.write_agent(tools=[ADD])
    run = await run_on_step_functions(aws_side, step_functions, "boo", agent="ghost")

    assert run.status is RunStatus.FAILED
    assert "ghost" in run.error and run.steps[-1].data["code"] == "not_found"
    assert [i.error for i in step_functions.invocations if i.error] == []


async def test_payloads_stay_small_however_long_the_conversation(aws_side: Side, step_functions):
    """Eight iterations of 40 KB tool results: the conversation grows to ~330 KB, beyond
    Step Functions' 256 KB, while every state payload stays a few hundred bytes and does not
    grow from one iteration to the next."""
    iterations = 8
    aws_side.write_agent(
        tools=[BIG], orchestration={"pattern": "react", "max_iterations": 20, "timeout_seconds": 60}
    )
    aws_side.server.push(
        *(
            Reply("Reading on.", tool_calls=[("big_text", {"size": 40_000})])
            for _ in range(iterations)
        ),
        Reply("done"),
    )

    run = await run_on_step_functions(aws_side, step_functions, "read everything")

    assert run.status is RunStatus.SUCCEEDED and run.iteration == iterations
    assert len(aws_side.server.requests[-1]["messages"][-1]["content"]) == 40_000
    conversation = sum(len(json.dumps(r["messages"])) for r in aws_side.server.requests[-1:])
    assert conversation > 256 * 1024
    [execution] = step_functions.client.list_executions(stateMachineArn=step_functions.express_arn)[
        "executions"
    ]
    history = step_functions.history(execution["executionArn"])
    sizes = [size for _, _, size in state_payloads(history)]
    assert max(sizes) < 1024
    per_iteration = largest_payload_per_iteration(history)
    assert len(per_iteration) == iterations + 1 and len(set(per_iteration[:-1])) == 1
    # Prepare, the last Step and Decide, Finalize; then 3 + n per iteration (n = 1 call)
    assert state_transitions(history) == 4 + iterations * (3 + 1)


async def test_a_transient_provider_failure_is_retried_by_the_state_machine(aws_side: Side):
    aws_side.write_agent(tools=[ADD])
    aws_side.server.push(
        Reply(status=503),
        Reply(status=503),  # enough for a router that retries a candidate once itself
        Reply(tool_calls=[("add", {"a": 2, "b": 3})]),
        Reply("5"),
    )
    with LocalStepFunctions(provider_retry_seconds=1, provider_retry_attempts=2) as sfn:
        run = await run_on_step_functions(aws_side, sfn, "2+3")

    assert run.status is RunStatus.SUCCEEDED and run.answer == "5"
    steps = [
        (i.event["action"], i.error) for i in sfn.invocations if i.function == ORCHESTRATION_STEP
    ]
    assert ("step", "TransientProviderFailure") in steps
    assert steps[-1] == ("finalize", None)


async def test_retries_run_out_and_the_run_fails_as_it_does_locally(
    local_side: Side, aws_side: Side, closed_port_url
):
    for side in (local_side, aws_side):
        write_agent(side.agents_dir, model=primary(closed_port_url + "/v1"))
        # A high breaker threshold keeps the AWS side's retried steps reporting the refused
        # connection, as the single local step does, rather than the circuit they opened.
        (side.agents_dir / "providers.yaml").write_text(
            "apiVersion: astromesh/v1\nkind: ProviderConfig\nmetadata: {name: p}\n"
            "spec:\n  providers: {}\n  routing:\n"
            "    circuit_breaker: {failure_threshold: 100, recovery_timeout: 60}\n"
        )
    here = await run_locally(local_side, "hello")
    with LocalStepFunctions(provider_retry_seconds=1, provider_retry_attempts=1) as sfn:
        there = await run_on_step_functions(aws_side, sfn, "hello")

    assert there.status is here.status is RunStatus.FAILED
    assert there.error == here.error
    assert [s.type for s in there.steps] == [s.type for s in here.steps] == ["prepare", "stopped"]
    errors = [i.error for i in sfn.invocations if i.event.get("action") == "step"]
    assert errors == ["TransientProviderFailure", "TransientProviderFailure"]


async def _until_finished(executor: StepFunctionsExecutor, run_id: str) -> RunState:
    deadline = time.monotonic() + 60
    while not (run := await executor.get(run_id)).status.is_terminal:
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.05)
    return run

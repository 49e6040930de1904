"""A run on the state machine is counted by the finalize task, once, as the local loop counts it."""

from __future__ import annotations

from astromesh.runs.state import RunStatus
from astromesh.telemetry.metrics import RUN_COST, RUNS_FAILED
from tests.support.agents import python_tool
from tests.support.emf import emf_lines, points
from tests.support.executors import Side, run_on_step_functions, script
from tests.support.model_servers import Reply
from tests.support.stepfunctions import LocalStepFunctions


async def test_a_failed_run_on_the_state_machine_is_counted_once(
    aws_side: Side, step_functions: LocalStepFunctions, monkeypatch, capsys
):
    monkeypatch.setenv("ASTROMESH_METRICS", "emf")
    monkeypatch.setenv("ASTROMESH_STAGE", "test")
    aws_side.write_agent(
        orchestration={"pattern": "react", "max_iterations": 1, "timeout_seconds": 30},
        tools=[python_tool("add", "add")],
    )
    script(aws_side, replies=[Reply("Let me add.", tool_calls=[("add", {"a": 1, "b": 1})])])

    run = await run_on_step_functions(aws_side, step_functions, "loop", session_id="s1")

    assert run.status is RunStatus.FAILED
    documents = emf_lines(capsys.readouterr().out)
    assert [(d["run_id"], d["Stage"]) for d in points(documents, RUNS_FAILED)] == [(run.id, "test")]
    assert [d["run_id"] for d in points(documents, RUN_COST)] == [run.id]


async def test_a_run_whose_agent_is_missing_is_counted_as_failed(
    aws_side: Side, step_functions: LocalStepFunctions, monkeypatch, capsys
):
    """No agent to finalize with, so no agent's sink: the driver counts it with the
    runtime's, or the RunsFailed alarm would never see it."""
    monkeypatch.setenv("ASTROMESH_METRICS", "emf")
    monkeypatch.setenv("ASTROMESH_STAGE", "test")
    aws_side.write_agent()

    run = await run_on_step_functions(aws_side, step_functions, "boo", agent="ghost")

    assert run.status is RunStatus.FAILED
    documents = emf_lines(capsys.readouterr().out)
    assert [d["run_id"] for d in points(documents, RUNS_FAILED)] == [run.id]

"""The local executor end to end: parallel agent branches, waits (a short timer, a long one
carried by a timer task, one until resumed) and recovery of unfinished runs by a new engine."""

from __future__ import annotations

from astromesh.runtime import AgentRuntime
from astromesh.stores.sqlite import SQLiteBackend
from astromesh.workflows import StepStatus, WorkflowStatus
from astromesh.workflows.engine import WorkflowEngine
from tests.channels.conftest import wait_for
from tests.support.agents import primary, write_agent
from tests.support.model_servers import Reply

FAN_OUT = """apiVersion: astromesh/v1
kind: Workflow
metadata: {name: fan-out}
spec:
  steps:
    - name: gather
      parallel:
        - name: pros
          agent: analyst
          input: "pros of {{ trigger.query }}"
        - name: cons
          agent: analyst
          input: "cons of {{ trigger.query }}"
        - name: stamp
          tool: calculator
          arguments: {expression: "6 * 7"}
    - name: breathe
      wait: {seconds: 0.01}
    - name: hold
      wait: {timeout_seconds: 3600}
    - name: verdict
      agent: analyst
      input: "{{ steps.pros.output }} / {{ steps.cons.output }} / {{ steps.hold.output.note }}"
"""

LONG_WAIT = """apiVersion: astromesh/v1
kind: Workflow
metadata: {name: later}
spec:
  steps:
    - name: nap
      wait: {seconds: 0.3}
    - name: stamp
      tool: current_time
"""


async def test_parallel_branches_waits_and_resume(agents_dir, openai_server, tmp_path):
    write_agent(agents_dir, "analyst", model=primary(openai_server.url))
    (agents_dir / "fan-out.workflow.yaml").write_text(FAN_OUT)
    openai_server.push(Reply("good"), Reply("bad"), Reply("balanced"))
    async with AgentRuntime(agents_dir, state=SQLiteBackend(tmp_path / "s.db")) as runtime:
        engine = WorkflowEngine(runtime)
        run = await engine.run("fan-out", {"query": "tea"}, tenant="default")
        assert run.status is WorkflowStatus.WAITING and run.cursor == "hold"
        assert run.steps["breathe"].status is StepStatus.SUCCEEDED
        outputs = run.steps["gather"].output
        assert sorted([outputs["pros"], outputs["cons"]]) == ["bad", "good"]
        assert outputs["stamp"] == {"expression": "6 * 7", "result": 42}
        prompts = sorted(r["messages"][-1]["content"] for r in openai_server.requests)
        assert prompts == ["cons of tea", "pros of tea"]

        run = await engine.settled(await engine.resume(run, {"note": "ok"}))
        assert run.status is WorkflowStatus.COMPLETED
        assert run.output == "balanced"
        assert openai_server.requests[-1]["messages"][-1]["content"].endswith(" / ok")
        await engine.aclose()


async def test_a_new_engine_carries_on_an_unfinished_run(agents_dir, tmp_path):
    (agents_dir / "later.workflow.yaml").write_text(LONG_WAIT)
    db = tmp_path / "s.db"
    async with AgentRuntime(agents_dir, state=SQLiteBackend(db)) as runtime:
        engine = WorkflowEngine(runtime, inline_wait_seconds=0.0)
        run = await engine.run("later", {}, tenant="default")
        assert run.status is WorkflowStatus.WAITING
        await engine.aclose()  # the process stops while the run waits

    async with AgentRuntime(agents_dir, state=SQLiteBackend(db)) as runtime:
        engine = WorkflowEngine(runtime, inline_wait_seconds=0.0)
        assert await engine.recover() == 1

        async def done():
            found = await engine.get_run(run.id)
            return found if found.status.is_terminal else None

        finished = await wait_for(done)
        assert finished.status is WorkflowStatus.COMPLETED
        assert finished.steps["stamp"].status is StepStatus.SUCCEEDED
        await engine.aclose()


SLOW = """apiVersion: astromesh/v1
kind: Workflow
metadata: {name: slow}
spec:
  steps:
    - name: think
      agent: analyst
      timeout_seconds: 0.2
      retry: {max_attempts: 2, initial_delay_seconds: 0}
      on_error: fallback
    - name: done
      switch:
        - {default: true, goto: end}
    - name: fallback
      tool: current_time
    - name: end
      tool: current_time
"""


async def test_a_step_over_its_timeout_is_retried_then_on_error(
    agents_dir, openai_server, tmp_path
):
    write_agent(agents_dir, "analyst", model=primary(openai_server.url))
    (agents_dir / "slow.workflow.yaml").write_text(SLOW)
    openai_server.push(Reply("late", delay=2), Reply("late again", delay=2))
    async with AgentRuntime(agents_dir, state=SQLiteBackend(tmp_path / "s.db")) as runtime:
        engine = WorkflowEngine(runtime)
        run = await engine.run("slow", {"query": "q"}, tenant="default")
        assert run.status is WorkflowStatus.COMPLETED
        think = run.steps["think"]
        assert (think.status, think.attempts, think.error) == (StepStatus.FAILED, 2, "timed out")
        assert run.steps["fallback"].status is StepStatus.SUCCEEDED
        # the abandoned child runs are recorded as cancelled, not left running
        runs = await (await runtime.state()).runs.list_runs(agent="analyst")
        assert [r.status.value for r in runs] == ["cancelled", "cancelled"]
        await engine.aclose()

"""StepDriver: the stages on run ids, called one by one as the state machine's tasks call them.

Here the stages are called directly (no state machine), against the in-memory store, to pin
down what a single task does: repeated calls, cancellation, limits, transient provider
failures and the failure path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from astromesh.errors import ConflictError
from astromesh.executors.driver import StepDriver, TransientProviderFailure, folder_agents
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend, MemoryRunStore
from tests.support.agents import primary, python_tool, write_agent
from tests.support.loop_tools import CALLS
from tests.support.model_servers import Reply

STAGES = ("prepare", "step", "act")
TOOLS = [
    python_tool("add", "add"),
    {"name": "counted", "type": "python", "handler": "tests.support.loop_tools:counted"},
    {"name": "slow", "type": "python", "handler": "tests.support.loop_tools:slow"},
]


class RacingRunStore(MemoryRunStore):
    """A run store where someone else writes just before the driver's next save."""

    def __init__(self) -> None:
        super().__init__()
        self.before_next_save: Callable[[RunState], object] | None = None

    async def save(self, run: RunState) -> RunState:
        hook, self.before_next_save = self.before_next_save, None
        if hook is not None:
            await hook(run)
        return await super().save(run)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """``setup(model=..., **spec) -> (driver, runtime, new_run)`` over an in-memory store."""
    opened: list[AgentRuntime] = []

    async def make(model: dict, **spec: object):
        write_agent(tmp_path / "agents", model=model, tools=TOOLS, **spec)
        backend = MemoryBackend()
        backend.runs = RacingRunStore()
        runtime = AgentRuntime(tmp_path / "agents", env={}, state=backend)
        opened.append(runtime)
        driver = StepDriver(backend.runs, folder_agents(runtime.get))

        async def new_run(*, through: str | None = None) -> RunState:
            """A new run, taken through the stages up to ``through``: "prepare", "step" or
            "act" (of the call ``call_1``)."""
            run = await backend.runs.create(RunState(agent="helper", query="go"))
            for stage in STAGES[: STAGES.index(through) + 1] if through else ():
                if stage == "act":
                    await driver.act(run.id, "call_1")
                else:
                    await getattr(driver, stage)(run.id)
            return run

        return driver, runtime, new_run

    yield make
    for runtime in opened:
        await runtime.close()


async def test_the_stages_in_order_then_each_again_does_nothing(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})]), Reply("3, 7")
    )
    run = await new_run()

    assert await driver.prepare(run.id) == {"run_id": run.id}
    answer = await driver.step(run.id)
    assert answer == {
        "next": "act",
        "actions": [
            {"run_id": run.id, "call_id": "call_1"},
            {"run_id": run.id, "call_id": "call_2"},
        ],
    }
    assert await driver.step(run.id) == answer  # a retried step: same actions, no model call
    assert len(openai_server.requests) == 1
    for action in reversed(answer["actions"]):  # completion order does not matter
        assert await driver.act(run.id, action["call_id"]) == {
            "call_id": action["call_id"],
            "ok": True,
            "child_run_id": None,
        }
    await driver.observe(run.id)
    assert await driver.step(run.id) == {"next": "finish", "actions": []}
    assert await driver.finalize(run.id) == {"run_id": run.id, "status": "succeeded"}

    done = await driver.runs.get(run.id)
    assert done.answer == "3, 7" and done.decision == {"type": "finish", "answer": "3, 7"}
    assert [s.type for s in done.steps] == [
        "prepare",
        "model_call",
        "tool_call",
        "tool_call",
        "model_call",
    ]
    assert [s.data["result"] for s in done.steps if s.type == "tool_call"] == ["3", "7"]
    # every stage repeated after the end changes nothing
    await driver.prepare(run.id)
    await driver.observe(run.id)
    assert await driver.step(run.id) == {"next": "finish", "actions": []}
    assert await driver.finalize(run.id) == {"run_id": run.id, "status": "succeeded"}
    assert (await driver.runs.get(run.id)).version == done.version
    assert len(openai_server.requests) == 2


async def test_step_observes_the_acted_calls_then_decides_in_one_save(setup, openai_server):
    """The state machine's Step after Act: observe and decide in one invocation; a retry of
    it, once saved, neither observes again nor calls the model again."""
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2})]),
        Reply(tool_calls=[("add", {"a": 3, "b": 4})]),
        Reply("3, 7"),
    )
    run = await new_run(through="prepare")
    first = await driver.step(run.id, [])
    [ref] = first["actions"]
    acted = [await driver.act(run.id, ref["call_id"])]
    before = (await driver.runs.get(run.id)).version

    second = await driver.step(run.id, acted)

    after = await driver.runs.get(run.id)
    assert after.version == before + 1  # observed and decided: one write
    assert [s.type for s in after.steps] == ["prepare", "model_call", "tool_call", "model_call"]
    assert after.iteration == 1 and second["next"] == "act"
    assert second["actions"] != first["actions"]
    # A retry of that Step (same input): the new calls have not run, nothing is observed
    assert await driver.step(run.id, acted) == second
    assert (await driver.runs.get(run.id)).version == after.version
    assert len(openai_server.requests) == 2
    acted = [await driver.act(run.id, a["call_id"]) for a in second["actions"]]
    assert await driver.step(run.id, acted) == {"next": "finish", "actions": []}
    done = await driver.runs.get(run.id)
    assert [s.data["result"] for s in done.steps if s.type == "tool_call"] == ["3", "7"]


async def test_a_retried_act_does_not_run_the_tool_twice(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(Reply(tool_calls=[("counted", {"key": "retried-act"})]))
    run = await new_run(through="step")

    first = await driver.act(run.id, "call_1")
    again = await driver.act(run.id, "call_1")

    assert first == again == {"call_id": "call_1", "ok": True, "child_run_id": None}
    assert CALLS["retried-act"] == 1
    stored = await driver.runs.get_results(run.id, ["call_1"])
    assert stored["call_1"].content == "1"


async def test_act_never_writes_the_run_document(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(Reply(tool_calls=[("add", {"a": 1, "b": 1})]))
    run = await new_run(through="step")
    version = (await driver.runs.get(run.id)).version

    await driver.act(run.id, "call_1")

    assert (await driver.runs.get(run.id)).version == version


async def test_act_of_an_unknown_call_is_an_error(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    run = await new_run()
    with pytest.raises(LookupError, match="no pending action 'call_9'"):
        await driver.act(run.id, "call_9")


async def test_act_stops_a_tool_at_the_time_limit(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(Reply(tool_calls=[("slow", {"seconds": 5})]), Reply("gave up"))
    run = await new_run(through="step")

    answer = await driver.act(run.id, "call_1", time_limit=0.2)
    assert answer == {"call_id": "call_1", "ok": False, "child_run_id": None}

    await driver.observe(run.id)
    observed = await driver.runs.get(run.id)
    assert observed.steps[-1].data["result"] == "tool 'slow' did not finish within 0.2 seconds"


async def test_a_cancelled_run_stops_at_its_next_step(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(Reply("Adding.", tool_calls=[("add", {"a": 1, "b": 1})]))
    run = await new_run(through="act")
    cancel = await driver.runs.get(run.id)
    cancel.status = RunStatus.CANCELLED
    await driver.runs.save(cancel)

    await driver.observe(run.id)
    assert await driver.step(run.id) == {"next": "fail", "actions": []}
    assert await driver.finalize(run.id) == {"run_id": run.id, "status": "cancelled"}

    done = await driver.runs.get(run.id)
    assert (done.error, done.answer) == ("cancelled by request", "Adding.")
    assert done.steps[-1].type == "stopped" and done.steps[-1].data["code"] == "cancelled"
    assert len(openai_server.requests) == 1


async def test_a_cancel_that_races_a_save_keeps_the_work_and_ends_cancelled(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(Reply(tool_calls=[("add", {"a": 1, "b": 1})]))
    run = await new_run(through="act")
    store = driver.runs

    async def cancel_meanwhile(_run: RunState) -> None:
        other = await store.get(run.id)
        other.status = RunStatus.CANCELLED
        await MemoryRunStore.save(store, other)

    store.before_next_save = cancel_meanwhile
    await driver.observe(run.id)

    observed = await store.get(run.id)
    assert observed.status is RunStatus.CANCELLED and observed.iteration == 1
    assert observed.steps[-1].type == "tool_call"  # observe's work was kept
    assert await driver.step(run.id) == {"next": "fail", "actions": []}
    assert (await driver.finalize(run.id))["status"] == "cancelled"


async def test_a_conflict_that_is_not_a_cancel_is_raised(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    run = await new_run()
    store = driver.runs

    async def write_meanwhile(_run: RunState) -> None:
        await MemoryRunStore.save(store, await store.get(run.id))

    store.before_next_save = write_meanwhile
    with pytest.raises(ConflictError):
        await driver.prepare(run.id)


async def test_limits_end_the_run_like_the_local_loop(setup, openai_server):
    driver, _, new_run = await setup(
        primary(openai_server.url),
        orchestration={"pattern": "react", "max_iterations": 1, "timeout_seconds": 30},
    )
    openai_server.push(Reply("Adding.", tool_calls=[("add", {"a": 1, "b": 1})]))
    run = await new_run(through="act")
    await driver.observe(run.id)

    assert await driver.step(run.id) == {"next": "fail", "actions": []}
    await driver.finalize(run.id)

    done = await driver.runs.get(run.id)
    assert done.status is RunStatus.FAILED and done.answer == "Adding."
    assert done.error == "stopped after max_iterations=1 without a final answer"


async def test_a_prompt_that_cannot_render_fails_the_run_without_a_model_call(setup, openai_server):
    driver, _, new_run = await setup(
        primary(openai_server.url), prompts={"system": "{{ ''.__class__.__mro__ }}"}
    )
    run = await new_run(through="prepare")
    assert await driver.step(run.id) == {"next": "fail", "actions": []}
    await driver.finalize(run.id)

    done = await driver.runs.get(run.id)
    assert done.status is RunStatus.FAILED and "cannot render" in done.error
    assert openai_server.requests == []


async def test_a_transient_provider_failure_is_raised_for_the_retry(setup, closed_port_url):
    driver, runtime, new_run = await setup(primary(closed_port_url + "/v1"))
    run = await new_run(through="prepare")

    with pytest.raises(TransientProviderFailure) as raised:
        await driver.step(run.id)
    stored = await driver.runs.get(run.id)
    assert stored.decision["code"] == "provider_unavailable"
    assert stored.decision["reason"] == raised.value.message
    with pytest.raises(TransientProviderFailure) as raised:  # the retry asks the model again
        await driver.step(run.id)
    # (the second failure may already be the circuit breaker's "circuit open": the stored
    # reason is always the latest attempt's)

    # retries exhausted: the state machine's Catch finalizes with the error
    error = {"Error": "TransientProviderFailure", "Cause": "{...}"}
    assert (await driver.finalize(run.id, error))["status"] == "failed"
    done = await driver.runs.get(run.id)
    assert done.error == raised.value.message
    assert done.error.startswith("openai_compat/scripted: every candidate failed:")
    local = await runtime.run("helper", "go")  # the local loop ends the same way
    # (its reason names the open circuit rather than the refused connection: the runtime's
    # breaker has seen the failures above)
    assert local.status is RunStatus.FAILED
    assert local.error.startswith("openai_compat/scripted: every candidate failed:")


async def test_near_the_deadline_a_transient_failure_fails_at_once(setup, closed_port_url):
    driver, _, new_run = await setup(
        primary(closed_port_url + "/v1"),
        orchestration={"pattern": "react", "max_iterations": 5, "timeout_seconds": 5},
    )
    run = await new_run(through="prepare")

    assert await driver.step(run.id) == {"next": "fail", "actions": []}
    await driver.finalize(run.id)
    assert (await driver.runs.get(run.id)).status is RunStatus.FAILED


async def test_finalize_with_an_error_ends_an_unfinished_run_as_failed(setup, openai_server):
    driver, _, new_run = await setup(primary(openai_server.url))
    openai_server.push(Reply("Thinking.", tool_calls=[("add", {"a": 1, "b": 1})]))
    run = await new_run(through="step")

    error = {"Error": "States.Timeout", "Cause": "the tool executor timed out"}
    assert (await driver.finalize(run.id, error))["status"] == "failed"

    done = await driver.runs.get(run.id)
    assert done.error == "internal error: States.Timeout" and done.answer == "Thinking."
    assert done.steps[-1].data == {"code": "internal_error", "reason": done.error}


async def test_a_run_whose_agent_cannot_be_found_still_ends(setup, openai_server):
    """An agent removed from the registry mid-run (or never resolvable by the functions) fails
    the run with the reason, instead of leaving it running with no one to finish it."""
    driver, _, _ = await setup(primary(openai_server.url))
    run = await driver.runs.create(RunState(agent="vanished", query="go"))

    await driver.prepare(run.id)
    assert await driver.step(run.id) == {"next": "fail", "actions": []}
    assert await driver.finalize(run.id) == {"run_id": run.id, "status": "failed"}

    ended = await driver.runs.get(run.id)
    assert ended.status is RunStatus.FAILED and ended.answer == ""
    assert "vanished" in ended.error and ended.steps[-1].type == "stopped"
    assert ended.steps[-1].data["code"] == "not_found"
    assert openai_server.requests == []

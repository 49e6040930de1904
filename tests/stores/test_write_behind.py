"""``RunStore.begin_checkpoint``: a checkpoint encoded when it begins, written meanwhile.

Every backend, including those whose write runs while the caller goes on (SQLite's worker
thread, a Redis or PostgreSQL task): what is stored is the run as it was when the checkpoint
began, whatever the caller changed meanwhile, and the next save appends what changed since.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astromesh.errors import ConflictError, StateUnavailable
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores import _journal
from astromesh.stores.base import StateBackend
from astromesh.stores.faults import translated
from tests.stores.conftest import BACKENDS, make_backend
from tests.stores.test_journal import new_run, one_step, stored_rows
from tests.support.agents import primary, python_tool, write_agent
from tests.support.executors import comparable
from tests.support.model_servers import Reply, ScriptedOpenAIServer


@pytest.fixture(params=BACKENDS)
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    store = await make_backend(request.param, request, tmp_path)
    try:
        yield store
    finally:
        await store.close()


def without_store_fields(run: RunState) -> dict[str, object]:
    return run.model_dump(mode="json", exclude={"version", "updated_at"})


async def test_what_is_written_is_the_run_when_the_checkpoint_began(state: StateBackend) -> None:
    run = await state.runs.create(new_run())
    one_step(run, 0)
    expected = without_store_fields(run)
    kept = [ActionResult(call_id="c0", name="t", ok=True, content="zero")]

    pending = await state.runs.begin_checkpoint(run, kept)
    one_step(run, 1)  # the loop goes on while the write is in flight
    run.iteration = 5
    run.answer = "later"
    assert await pending.wait() is run

    assert run.version == 2
    stored = await state.runs.get(run.id)
    assert without_store_fields(stored) == expected and stored.version == 2
    assert (await state.runs.get_results(run.id, ["c0"]))["c0"].content == "zero"

    # The journal remembers what was written, not the lists as they grew meanwhile: the
    # next save appends the second step instead of believing it stored.
    await state.runs.checkpoint(run)
    rows = await stored_rows(state, run.id)
    assert [len(rows[name]) for name in _journal.LISTS] == [4, 2, 2]
    assert without_store_fields(await state.runs.get(run.id)) == without_store_fields(run)


async def test_a_checkpoint_that_lost_to_a_cancel_raises_when_waited_for(
    state: StateBackend,
) -> None:
    run = await state.runs.create(new_run())
    other = await state.runs.get(run.id)
    other.status = RunStatus.CANCELLED
    await state.runs.save(other)
    one_step(run, 0)

    pending = await state.runs.begin_checkpoint(run)
    with pytest.raises(ConflictError):
        await pending.wait()
    with pytest.raises(ConflictError):  # and again: a failure is never lost
        await pending.wait()

    assert run.version == 1  # nothing adopted
    stored = await state.runs.get(run.id)
    assert stored.status is RunStatus.CANCELLED and stored.steps == []


async def test_a_connection_fault_of_a_write_task_is_state_unavailable() -> None:
    async def refused() -> None:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(StateUnavailable) as raised:
        await translated("redis", refused())
    assert raised.value.code == "state_unavailable" and "redis" in raised.value.message


async def test_the_loop_stores_every_step_on_every_backend(
    state: StateBackend, tmp_path: Path
) -> None:
    """The local loop writes behind on each backend; the stored run is the run returned,
    large results included."""
    tools = [
        python_tool("add", "add"),
        {"name": "big_text", "type": "python", "handler": "tests.support.loop_tools:big_text"},
    ]
    with ScriptedOpenAIServer() as server:
        write_agent(tmp_path / "agents", model=primary(server.url), tools=tools)
        server.push(
            Reply(tool_calls=[("big_text", {"size": 20_000})]),
            Reply(tool_calls=[("add", {"a": 1, "b": 2})]),
            Reply(tool_calls=[("add", {"a": 3, "b": 4})]),
            Reply("Done."),
        )
        runtime = AgentRuntime(tmp_path / "agents", env={}, state=state)
        try:
            run = await runtime.run("helper", "go", session_id="s1")
        finally:
            await runtime.close()
        assert "END!" in str(server.requests[1]["messages"])  # the full result, in flight
    assert run.status is RunStatus.SUCCEEDED and run.iteration == 3
    stored = await state.runs.get(run.id)
    assert comparable(stored) == comparable(run) and stored.version == run.version
    assert (await state.runs.get_results(run.id, ["call_1"]))["call_1"].content.endswith("END!")

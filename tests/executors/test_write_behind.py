"""Write-behind checkpoints in the local loop, on a real SQLite store.

The checkpoint after observe commits while the next model call is made, and the loop waits
for it before that call's tools run: a real SQLite backend whose worker can be told to hold
(or fail) the next call shows both orders without timing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from astromesh.errors import StateUnavailable
from astromesh.runs.events import RunEvent
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.stores.base import PendingCheckpoint, StateBackend
from astromesh.stores.memory import MemoryBackend
from astromesh.stores.sqlite import SQLiteBackend, SQLiteRunStore
from tests.support.agents import primary, python_tool, write_agent
from tests.support.executors import comparable
from tests.support.model_servers import Reply, ScriptedOpenAIServer

T = TypeVar("T")

TOOLS = [
    python_tool("add", "add"),
    {"name": "big_text", "type": "python", "handler": "tests.support.loop_tools:big_text"},
]


class HeldSQLite(SQLiteBackend):
    """A real SQLite backend whose next worker call can be held until an event is set, or
    made to raise instead of running."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.hold_next: threading.Event | None = None
        self.fail_next: Exception | None = None
        self.held = 0

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        gate, self.hold_next = self.hold_next, None
        failure, self.fail_next = self.fail_next, None
        if gate is None and failure is None:
            return super().submit(fn)

        def held(conn: sqlite3.Connection) -> T:
            if gate is not None:
                self.held += 1
                assert gate.wait(60), "the test never released the held write"
            if failure is not None:
                raise failure
            return fn(conn)

        return super().submit(held)


class AwaitedRunStore(SQLiteRunStore):
    """SQLite with every checkpoint written before ``begin_checkpoint`` returns: the loop as
    it was before write-behind, for comparison."""

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        pending = await super().begin_checkpoint(run, results)
        with contextlib.suppress(Exception):  # raised again by the caller's wait()
            await pending.wait()
        return pending


class AwaitedSQLite(HeldSQLite):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.runs = AwaitedRunStore(self)


def stored_head(db: Path, run_id: str) -> dict[str, Any]:
    """The run's head as committed, read through a connection of its own."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        (document,) = conn.execute("SELECT document FROM runs WHERE id = ?", (run_id,)).fetchone()
    return json.loads(document)


def item_counts(db: Path, run_id: str) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT list, count(*) FROM run_items WHERE run_id = ? GROUP BY list", (run_id,)
        ).fetchall()
        results = conn.execute(
            "SELECT count(*) FROM action_results WHERE run_id = ?", (run_id,)
        ).fetchone()
    return {**dict(rows), "action_results": results[0]}


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (a hang guard, not a timing assertion)."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


class Events:
    """The run's events, with hooks on the n-th event of a type."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.hooks: dict[tuple[str, int], Callable[[], None]] = {}

    @property
    def run_id(self) -> str:
        return str(self.events[0].data["run_id"])

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    async def __call__(self, event: RunEvent) -> None:
        self.events.append(event)
        hook = self.hooks.get((event.type, self.types().count(event.type)))
        if hook is not None:
            hook()


@pytest.fixture
def agents(tmp_path: Path, openai_server: ScriptedOpenAIServer) -> Path:
    folder = tmp_path / "agents"
    write_agent(folder, model=primary(openai_server.url), tools=TOOLS)
    return folder


@pytest.fixture
def no_lost_futures(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails a test after which a failed write's future was never awaited."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    yield
    gc.collect()
    assert "never retrieved" not in caplog.text


def two_tool_calls_then_answer(server: ScriptedOpenAIServer) -> None:
    server.push(
        Reply(tool_calls=[("add", {"a": 1, "b": 2})]),
        Reply(tool_calls=[("add", {"a": 3, "b": 4})]),
        Reply("It is 10."),
    )


async def test_the_next_model_call_overlaps_the_write_and_its_tools_wait_for_it(
    tmp_path: Path, agents: Path, openai_server: ScriptedOpenAIServer, no_lost_futures: None
) -> None:
    two_tool_calls_then_answer(openai_server)
    state = HeldSQLite(tmp_path / "state.db")
    runtime = AgentRuntime(agents, env={}, state=state)
    gate = threading.Event()
    events = Events()
    stored_at_tool: list[int] = []
    events.hooks[("tool_result", 1)] = lambda: setattr(state, "hold_next", gate)

    async def on_event(event: RunEvent) -> None:
        await events(event)
        if event.type == "tool_call":  # emitted right before the tool runs
            stored_at_tool.append(stored_head(state.path, events.run_id)["iteration"])

    try:
        running = asyncio.create_task(runtime.run("helper", "add", on_event=on_event))
        # The checkpoint after the first tool is held in the worker, and the second model
        # call is made all the same.
        # (the worker may take the held write a moment after the loop sent the request)
        await until(lambda: len(openai_server.requests) == 2 and state.held == 1)
        assert not running.done()
        assert stored_head(state.path, events.run_id)["iteration"] == 0
        gate.set()
        run = await running
    finally:
        gate.set()
        await runtime.close()
        await state.close()

    assert run.status is RunStatus.SUCCEEDED and run.answer == "It is 10."
    # Each tool ran only once the iteration before it was stored.
    assert stored_at_tool == [0, 1]
    assert stored_head(state.path, run.id)["status"] == "succeeded"


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_a_cancel_found_by_the_write_behind_stops_the_run_before_its_tools(
    kind: str,
    tmp_path: Path,
    agents: Path,
    openai_server: ScriptedOpenAIServer,
    no_lost_futures: None,
) -> None:
    two_tool_calls_then_answer(openai_server)
    state: StateBackend = HeldSQLite(tmp_path / "state.db") if kind == "sqlite" else MemoryBackend()
    runtime = AgentRuntime(agents, env={}, state=state)
    events = Events()

    async def on_event(event: RunEvent) -> None:
        await events(event)
        if event.type == "tool_call":  # cancelled while the first tool runs
            stored = await state.runs.get(events.run_id)
            stored.status = RunStatus.CANCELLED
            await state.runs.save(stored)

    try:
        run = await runtime.run("helper", "add", on_event=on_event)
        stored = await state.runs.get(run.id)
    finally:
        await runtime.close()
        await state.close()

    assert run.status is RunStatus.CANCELLED
    assert len(openai_server.requests) == 2  # the call made while the checkpoint was written
    assert events.types().count("tool_call") == 1  # its tools never ran
    assert comparable(stored) == comparable(run)
    assert [s.type for s in stored.steps] == [
        "prepare",
        "model_call",
        "tool_call",
        "model_call",
        "stopped",
    ]
    assert stored.steps[-1].data["code"] == "cancelled"


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (StateUnavailable("sqlite", OSError("disk gone")), "state_unavailable"),
        (sqlite3.OperationalError("disk I/O error"), "internal_error"),
    ],
)
async def test_a_failed_write_ends_the_run_as_an_awaited_one_did(
    failure: Exception,
    code: str,
    tmp_path: Path,
    no_lost_futures: None,
) -> None:
    outcomes = []
    for backend in (HeldSQLite, AwaitedSQLite):
        with ScriptedOpenAIServer() as server:
            folder = tmp_path / backend.__name__
            write_agent(folder, model=primary(server.url), tools=TOOLS)
            two_tool_calls_then_answer(server)
            state = backend(tmp_path / f"{backend.__name__}.db")
            runtime = AgentRuntime(folder, env={}, state=state)
            events = Events()
            events.hooks[("tool_result", 1)] = lambda s=state: setattr(s, "fail_next", failure)
            try:
                run = await runtime.run("helper", "add", on_event=events)
                stored = await state.runs.get(run.id)
            finally:
                await runtime.close()
                await state.close()
        assert events.types().count("tool_call") == 1  # nothing ran after the failed write
        assert comparable(stored) == comparable(run)  # and the final save recorded the run
        outcomes.append((run.status, run.error, run.steps[-1].data["code"]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] is RunStatus.FAILED and outcomes[0][2] == code


async def test_a_task_cancelled_with_a_write_in_flight_waits_for_it(
    tmp_path: Path, agents: Path, openai_server: ScriptedOpenAIServer, no_lost_futures: None
) -> None:
    openai_server.push(Reply(tool_calls=[("add", {"a": 1, "b": 2})]), Reply("late", delay=30))
    state = HeldSQLite(tmp_path / "state.db")
    runtime = AgentRuntime(agents, env={}, state=state)
    gate = threading.Event()
    events = Events()
    events.hooks[("tool_result", 1)] = lambda: setattr(state, "hold_next", gate)
    try:
        running = asyncio.create_task(runtime.run("helper", "add", on_event=events))
        await until(lambda: len(openai_server.requests) == 2)
        running.cancel()
        await asyncio.sleep(0)
        assert not running.done()  # waiting for the held write, not abandoning it
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert stored_head(state.path, events.run_id)["iteration"] == 1  # it committed
    finally:
        gate.set()
        await runtime.close()
        await state.close()


async def test_the_stored_run_is_what_the_awaited_loop_stores(tmp_path: Path) -> None:
    """A run with large results kept by reference (read back by the next model call while
    their checkpoint may be in flight) is stored exactly as without write-behind."""
    stored = []
    for backend in (SQLiteBackend, AwaitedSQLite):
        with ScriptedOpenAIServer() as server:
            folder = tmp_path / backend.__name__
            write_agent(folder, model=primary(server.url), tools=TOOLS)
            server.push(
                Reply(tool_calls=[("big_text", {"size": 20_000})]),
                Reply(tool_calls=[("add", {"a": 1, "b": 2}), ("big_text", {"size": 9_000})]),
                Reply("Done."),
            )
            state = backend(tmp_path / f"{backend.__name__}.db")
            runtime = AgentRuntime(folder, env={}, state=state)
            try:
                run = await runtime.run("helper", "go", session_id="s1")
                loaded = await state.runs.get(run.id)
                results = await state.runs.get_results(run.id, ["call_1", "call_2", "call_3"])
            finally:
                await runtime.close()
                await state.close()
            assert run.status is RunStatus.SUCCEEDED
            assert comparable(loaded) == comparable(run)
            # The second model call saw the first result whole, not its preview.
            assert "END!" in json.dumps(server.requests[1]["messages"])
            stored.append(
                (
                    comparable(loaded),
                    item_counts(state.path, run.id),
                    {k: v.content for k, v in results.items()},
                    server.requests,
                )
            )
    assert stored[0] == stored[1]

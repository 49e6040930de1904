"""A run's growing lists are rows: a save writes what the step added, never loses anything.

Every backend (SQLite, Redis, PostgreSQL, and the in-memory one the same way) keeps a run
as a head plus one row per message, step and kept span (``astromesh.stores._journal``).
These tests read the backends' own storage to check that a step appends only its new
elements, and that every case where appending would be wrong (another writer's version, a
list made shorter or replaced, a copy of the run, a document written before rows existed)
stores the run exactly as it is.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from astromesh.errors import ConflictError
from astromesh.models.types import Message
from astromesh.runs.growing import GrowingList
from astromesh.runs.state import RunState
from astromesh.runs.trace import RunTrace
from astromesh.stores import _journal
from astromesh.stores.base import StateBackend
from tests.stores.conftest import make_backend

DURABLE = ["memory", "sqlite", "redis", "postgres"]


@pytest.fixture(params=DURABLE)
async def durable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    store = await make_backend(request.param, request, tmp_path)
    try:
        yield store
    finally:
        await store.close()


def new_run() -> RunState:
    return RunState(
        agent="support",
        query="hello",
        messages=[Message.system("You are helpful."), Message.user("hello")],
        trace=RunTrace(trace_id="0" * 31 + "1", span_id="0" * 15 + "1"),
    )


def one_step(run: RunState, n: int) -> None:
    """What an iteration adds: a message, a step record, a kept span."""
    run.messages.append(Message.assistant(f"answer {n} ✓"))
    run.record("model_call", n=n)
    assert run.trace is not None
    run.trace.keep([{"name": "chat", "span_id": f"{n:016x}", "attributes": {"n": n}}])


async def stored_rows(backend: StateBackend, run_id: str) -> dict[str, list[str]]:
    """The backend's own item rows of ``run_id``, by list, in order."""
    kind = type(backend).__name__
    rows: list[tuple[str, str]]
    if kind == "MemoryBackend":
        held = backend.runs._items[run_id]  # type: ignore[attr-defined]
        rows = [(name, body) for name in sorted(held) for body in held[name]]
    elif kind == "SQLiteBackend":
        rows = await backend.call(  # type: ignore[attr-defined]
            lambda conn: conn.execute(
                "SELECT list, body FROM run_items WHERE run_id = ? ORDER BY list, seq", (run_id,)
            ).fetchall()
        )
    elif kind == "PostgresBackend":
        rows = await backend.execute(  # type: ignore[attr-defined]
            "SELECT list, body FROM run_items WHERE run_id = %s ORDER BY list, seq", (run_id,)
        )
    else:
        rows = []
        for name in _journal.LISTS:
            key = backend.key("items", run_id, name)  # type: ignore[attr-defined]
            rows += [(name, body) for body in await backend.client.lrange(key, 0, -1)]  # type: ignore[attr-defined]
    found: dict[str, list[str]] = {name: [] for name in _journal.LISTS}
    for name, body in rows:
        found[name].append(body)
    return found


async def stored_head(backend: StateBackend, run_id: str) -> dict[str, Any]:
    kind = type(backend).__name__
    if kind == "MemoryBackend":
        head = backend.runs._runs[run_id]  # type: ignore[attr-defined]
    elif kind == "SQLiteBackend":
        [(head,)] = await backend.call(  # type: ignore[attr-defined]
            lambda conn: conn.execute(
                "SELECT document FROM runs WHERE id = ?", (run_id,)
            ).fetchall()
        )
    elif kind == "PostgresBackend":
        [(head,)] = await backend.execute(  # type: ignore[attr-defined]
            "SELECT document::text FROM runs WHERE id = %s", (run_id,)
        )
    else:
        head = await backend.client.get(backend.key("run", run_id))  # type: ignore[attr-defined]
    return json.loads(head)


async def write_legacy(backend: StateBackend, run: RunState) -> None:
    """Store ``run`` as a document from before rows: the whole run in the head, no rows."""
    document = run.model_dump_json()
    kind = type(backend).__name__
    if kind == "MemoryBackend":
        backend.runs._runs[run.id] = document  # type: ignore[attr-defined]
        backend.runs._items[run.id] = {}  # type: ignore[attr-defined]
    elif kind == "SQLiteBackend":

        def legacy(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE runs SET document = ? WHERE id = ?", (document, run.id))
            conn.execute("DELETE FROM run_items WHERE run_id = ?", (run.id,))

        await backend.call(legacy)  # type: ignore[attr-defined]
    elif kind == "PostgresBackend":
        await backend.execute(  # type: ignore[attr-defined]
            "UPDATE runs SET document = %s::jsonb WHERE id = %s", (document, run.id)
        )
        await backend.execute("DELETE FROM run_items WHERE run_id = %s", (run.id,))  # type: ignore[attr-defined]
    else:
        client = backend.client  # type: ignore[attr-defined]
        await client.set(backend.key("run", run.id), document)  # type: ignore[attr-defined]
        for name in _journal.LISTS:
            await client.delete(backend.key("items", run.id, name))  # type: ignore[attr-defined]


def same_run(stored: RunState, expected: RunState) -> None:
    assert stored.model_dump(mode="json") == expected.model_dump(mode="json")


async def test_each_save_appends_the_step_and_the_head_holds_no_list(
    durable: StateBackend,
) -> None:
    run = await durable.runs.create(new_run())
    for n in range(5):
        one_step(run, n)
        written = _journal.encode(run.model_copy(), durable.runs, replacing=run.version)
        # what this save writes: the three new elements, nothing rewritten
        assert written.rewritten() == []
        assert [(run_id, name, seq) for run_id, name, seq, _ in written.rows()] == [
            (run.id, "messages", 2 + n),
            (run.id, "steps", n),
            (run.id, "spans", n),
        ]
        await durable.runs.save(run)

    rows = await stored_rows(durable, run.id)
    assert [len(rows[name]) for name in _journal.LISTS] == [7, 5, 5]
    assert json.loads(rows["messages"][-1])["content"] == "answer 4 ✓"
    head = await stored_head(durable, run.id)
    assert "messages" not in head and "steps" not in head and "spans" not in head["trace"]
    assert head["version"] == 6
    same_run(await durable.runs.get(run.id), run)


async def test_a_loaded_run_appends_too(durable: StateBackend) -> None:
    """A Step Functions task loads the run, adds its step and saves: an append, as locally."""
    created = await durable.runs.create(new_run())
    one_step(created, 0)
    await durable.runs.save(created)

    loaded = await durable.runs.get(created.id)
    one_step(loaded, 1)
    written = _journal.encode(loaded.model_copy(), durable.runs, replacing=loaded.version)
    assert written.rewritten() == [] and len(written.rows()) == 3
    await durable.runs.save(loaded)
    same_run(await durable.runs.get(created.id), loaded)


async def test_a_writer_that_lost_a_race_rewrites_whole_on_the_version_it_adopts(
    durable: StateBackend,
) -> None:
    """The cancel path: a conflict, the stored version adopted, the run's own lists saved.
    Its snapshot is of an older version, so appending could duplicate or interleave rows."""
    run = await durable.runs.create(new_run())
    other = await durable.runs.get(run.id)
    other.messages.append(Message.user("written by the other writer"))
    await durable.runs.save(other)

    one_step(run, 0)
    with pytest.raises(ConflictError):
        await durable.runs.save(run)
    run.version = (await durable.runs.get(run.id)).version
    await durable.runs.save(run)

    stored = await durable.runs.get(run.id)
    same_run(stored, run)
    assert "written by the other writer" not in [m.content for m in stored.messages]
    assert len((await stored_rows(durable, run.id))["messages"]) == 3


async def test_a_shortened_or_replaced_list_is_stored_as_it_now_is(durable: StateBackend) -> None:
    run = await durable.runs.create(new_run())
    for n in range(3):
        one_step(run, n)
        await durable.runs.save(run)

    run.messages = run.messages[:1]  # shorter
    run.steps = [run.steps[0], run.steps[2]]  # one removed from the middle
    assert run.trace is not None
    run.trace.spans[0] = {"name": "replaced", "span_id": "f" * 16, "attributes": {}}
    await durable.runs.save(run)

    same_run(await durable.runs.get(run.id), run)
    rows = await stored_rows(durable, run.id)
    assert [len(rows[name]) for name in _journal.LISTS] == [1, 2, 3]


def _replace_a_middle_step(run: RunState) -> None:
    # Same length, same last element: only an edit count can tell.
    run.steps[1] = run.steps[1].model_copy(update={"type": "replaced"})


def _pop_and_append_a_message(run: RunState) -> None:
    run.messages.pop()
    run.messages.append(Message.assistant("another ending"))


def _insert_a_message(run: RunState) -> None:
    run.messages.insert(1, Message.user("inserted"))


def _reorder_spans(run: RunState) -> None:
    assert run.trace is not None
    run.trace.spans.reverse()


def _drop_a_step_and_add_one(run: RunState) -> None:
    del run.steps[0]
    run.record("model_call", n=9)


IN_PLACE = {
    "replace": _replace_a_middle_step,
    "pop+append": _pop_and_append_a_message,
    "insert": _insert_a_message,
    "reverse": _reorder_spans,
    "del+append": _drop_a_step_and_add_one,
}


@pytest.mark.parametrize("edit", IN_PLACE.values(), ids=IN_PLACE.keys())
async def test_a_list_edited_in_place_other_than_by_appending_is_rewritten(
    durable: StateBackend, edit: Any
) -> None:
    """The lists are GrowingLists: a save of an unedited one compares no element, so every
    other change to one (even one that keeps its length and last element) must rewrite it."""
    run = await durable.runs.create(new_run())
    for n in range(3):
        one_step(run, n)
        await durable.runs.save(run)

    edit(run)
    written = _journal.encode(run.model_copy(), durable.runs, replacing=run.version)
    assert len(written.rewritten()) == 1
    await durable.runs.save(run)
    same_run(await durable.runs.get(run.id), run)


async def test_a_list_replaced_by_one_beginning_with_the_same_objects_appends(
    durable: StateBackend,
) -> None:
    run = await durable.runs.create(new_run())
    one_step(run, 0)
    await durable.runs.save(run)

    run.messages = [*run.messages, Message.user("a plain list")]  # compared element by element
    run.steps = GrowingList(run.steps)  # another GrowingList: compared with the one stored
    one_step(run, 1)
    written = _journal.encode(run.model_copy(), durable.runs, replacing=run.version)
    assert written.rewritten() == []
    assert [(name, seq) for _, name, seq, _ in written.rows()] == [
        ("messages", 3),
        ("messages", 4),
        ("steps", 1),
        ("spans", 1),
    ]
    await durable.runs.save(run)
    one_step(run, 2)  # the plain list stays a plain list: still appends
    await durable.runs.save(run)
    same_run(await durable.runs.get(run.id), run)


async def test_an_element_given_invalid_text_after_validation_is_stored_repaired(
    durable: StateBackend,
) -> None:
    """A message's text set after it was built (a tool result quoting a lone surrogate) is
    not re-validated; its row must still be valid JSON text, repaired."""
    run = await durable.runs.create(new_run())
    message = Message.assistant("fine")
    message.content = "bad \ud800 text"
    run.messages.append(message)
    await durable.runs.save(run)

    stored = await durable.runs.get(run.id)
    assert stored.messages[-1].content == "bad \ufffd text"


async def test_a_deep_copy_of_a_run_saves_whole(durable: StateBackend) -> None:
    run = await durable.runs.create(new_run())
    one_step(run, 0)
    await durable.runs.save(run)

    twin = copy.deepcopy(run)  # new elements: the snapshot's references match none of them
    twin.messages[0] = Message.system("changed system prompt")
    await durable.runs.save(twin)
    same_run(await durable.runs.get(run.id), twin)


async def test_a_document_from_before_rows_reads_whole_and_moves_to_rows_at_its_next_save(
    durable: StateBackend,
) -> None:
    run = await durable.runs.create(new_run())
    for n in range(2):
        one_step(run, n)
    run.version = 1
    await write_legacy(durable, run)

    loaded = await durable.runs.get(run.id)
    same_run(loaded, run)
    one_step(loaded, 2)
    await durable.runs.save(loaded)

    same_run(await durable.runs.get(run.id), loaded)
    rows = await stored_rows(durable, run.id)
    assert [len(rows[name]) for name in _journal.LISTS] == [5, 3, 3]
    head = await stored_head(durable, run.id)
    assert "messages" not in head


async def test_list_runs_returns_whole_runs(durable: StateBackend) -> None:
    run = await durable.runs.create(new_run())
    for n in range(3):
        one_step(run, n)
        await durable.runs.save(run)
    [listed] = await durable.runs.list_runs(agent="support")
    same_run(listed, run)


async def test_an_element_changed_in_place_after_it_was_stored_is_caught_under_verification(
    durable: StateBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity cannot see an element mutated in place; the suite's verification does, so a
    code path that does it fails its tests instead of storing a stale element."""
    monkeypatch.setenv("ASTROMESH_VERIFY_JOURNAL", "1")
    run = await durable.runs.create(new_run())
    one_step(run, 0)
    await durable.runs.save(run)

    run.messages[1].content = "edited in place"
    with pytest.raises(AssertionError, match=r"messages\[1\] was changed in place"):
        await durable.runs.save(run)

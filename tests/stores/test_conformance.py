"""One behaviour, every backend: the RunStore and HistoryStore contracts of ``stores/base.py``.

``MemoryBackend`` is the reference; SQLite, Redis and PostgreSQL must be indistinguishable
from it through the interface.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from astromesh.errors import ConflictError, NotFoundError
from astromesh.models.types import Message, ToolCall, Usage
from astromesh.runs.state import ActionResult, RunState, RunStatus
from astromesh.stores.base import SessionKey, StateBackend

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def rich_run(**overrides: object) -> RunState:
    """A run with every field set to something non-default, nested models included."""
    call = ToolCall(
        id="call_1",
        name="search",
        arguments={"q": 'naïve "quotes" ✓ 漢字', "k": 3, "filters": {"tags": ["a", "b"]}},
    )
    run = RunState(
        agent="support",
        session_id="sess-1",
        namespace="team-a",
        query="What's the weather?",
        context={"user": {"id": 7, "plan": "pro"}},
        status=RunStatus.REQUIRES_ACTION,
        iteration=2,
        messages=[
            Message.system("You are helpful."),
            Message.user("What's the weather? \u00e9\u4e2d"),
            Message.assistant("", [call]),
            Message.tool("sunny, 21°C", tool_call_id="call_1", name="search"),
        ],
        pending_actions=[call],
        results=[
            ActionResult(
                call_id="call_1", name="search", ok=True, content="sunny", duration_ms=12.5
            )
        ],
        answer=None,
        error=None,
        data={"nested": {"list": [1, 2.5, None, True]}},
        created_at=T0,
    )
    run.record("model_call", duration_ms=101.25, model="smollm2", tokens=[3, 4])
    run.record("tool_call", name="search", ok=True)
    run.usage.add(
        provider="llamacpp",
        model="smollm2",
        role="default",
        usage=Usage(tokens_in=10, tokens_out=5),
        cost=0.0015,
    )
    for name, value in overrides.items():
        setattr(run, name, value)
    return run


# --- runs -------------------------------------------------------------------------------


async def test_create_get_round_trip_keeps_every_field(backend: StateBackend) -> None:
    run = rich_run()
    created = await backend.runs.create(run)

    assert created is run
    assert run.version == 1
    loaded = await backend.runs.get(run.id)
    assert loaded == run
    assert loaded.model_dump(mode="json") == run.model_dump(mode="json")
    assert loaded.messages[2].tool_calls[0].arguments["filters"] == {"tags": ["a", "b"]}
    assert [s.type for s in loaded.steps] == ["model_call", "tool_call"]
    assert loaded.usage.by_model[0].cost == pytest.approx(0.0015)
    assert loaded.created_at == T0


async def test_create_resets_version_to_one(backend: StateBackend) -> None:
    run = rich_run(version=41)
    await backend.runs.create(run)
    assert run.version == 1
    assert (await backend.runs.get(run.id)).version == 1


async def test_get_unknown_run_raises_not_found(backend: StateBackend) -> None:
    with pytest.raises(NotFoundError):
        await backend.runs.get("run_missing")


async def test_duplicate_create_conflicts_and_keeps_original(backend: StateBackend) -> None:
    run = rich_run()
    await backend.runs.create(run)
    duplicate = rich_run(id=run.id, query="other")

    with pytest.raises(ConflictError):
        await backend.runs.create(duplicate)

    assert (await backend.runs.get(run.id)).query == run.query


async def test_save_increments_version_and_persists_changes(backend: StateBackend) -> None:
    run = await backend.runs.create(rich_run())
    first_update = run.updated_at

    loaded = await backend.runs.get(run.id)
    loaded.status = RunStatus.SUCCEEDED
    loaded.answer = "It is sunny."
    loaded.messages.append(Message.assistant("It is sunny."))
    loaded.pending_actions = []
    saved = await backend.runs.save(loaded)

    assert saved is loaded
    assert loaded.version == 2
    assert loaded.updated_at >= first_update
    stored = await backend.runs.get(run.id)
    assert stored == loaded
    assert stored.status is RunStatus.SUCCEEDED

    stored.iteration += 1
    await backend.runs.save(stored)
    assert stored.version == 3
    assert (await backend.runs.get(run.id)).version == 3


async def test_stale_save_conflicts_and_leaves_both_sides_alone(backend: StateBackend) -> None:
    run = await backend.runs.create(rich_run())
    stale = await backend.runs.get(run.id)
    fresh = await backend.runs.get(run.id)
    fresh.answer = "first"
    await backend.runs.save(fresh)

    stale.answer = "second"
    with pytest.raises(ConflictError):
        await backend.runs.save(stale)

    assert stale.version == 1  # the caller's object is untouched by a failed save
    stored = await backend.runs.get(run.id)
    assert stored.answer == "first"
    assert stored.version == 2


async def test_save_of_unknown_run_raises_not_found(backend: StateBackend) -> None:
    with pytest.raises(NotFoundError):
        await backend.runs.save(rich_run(version=1))


async def test_concurrent_writers_exactly_one_wins(backend: StateBackend) -> None:
    run = await backend.runs.create(rich_run())
    copies = await asyncio.gather(*(backend.runs.get(run.id) for _ in range(5)))
    for i, copy in enumerate(copies):
        copy.answer = f"writer {i}"

    outcomes = await asyncio.gather(*(backend.runs.save(c) for c in copies), return_exceptions=True)

    winners = [o for o in outcomes if isinstance(o, RunState)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(e, ConflictError) for e in losers), losers
    stored = await backend.runs.get(run.id)
    assert stored.version == 2
    assert stored.answer == winners[0].answer


async def test_two_loads_both_save_one_wins(backend: StateBackend) -> None:
    run = await backend.runs.create(rich_run())
    a, b = await asyncio.gather(backend.runs.get(run.id), backend.runs.get(run.id))
    a.answer, b.answer = "a", "b"

    result_a, result_b = await asyncio.gather(
        backend.runs.save(a), backend.runs.save(b), return_exceptions=True
    )

    results = [result_a, result_b]
    assert sum(isinstance(r, RunState) for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == 1


async def _seed_runs(backend: StateBackend) -> list[RunState]:
    """Six runs, created out of time order, across two agents and three sessions."""
    specs = [
        ("alpha", "s1", 3),
        ("beta", "s1", 1),
        ("alpha", "s2", 5),
        ("beta", "s3", 0),
        ("alpha", "s1", 4),
        ("beta", "s2", 2),
    ]
    runs = []
    for agent, session, minutes in specs:
        run = RunState(
            agent=agent,
            session_id=session,
            query=f"{agent}/{session}",
            created_at=T0 + timedelta(minutes=minutes),
        )
        runs.append(await backend.runs.create(run))
    return runs


def _ids_newest_first(runs: list[RunState]) -> list[str]:
    return [r.id for r in sorted(runs, key=lambda r: r.created_at, reverse=True)]


async def test_list_runs_filters_and_orders_newest_first(backend: StateBackend) -> None:
    runs = await _seed_runs(backend)

    everything = await backend.runs.list_runs()
    assert [r.id for r in everything] == _ids_newest_first(runs)

    alpha = await backend.runs.list_runs(agent="alpha")
    assert [r.id for r in alpha] == _ids_newest_first([r for r in runs if r.agent == "alpha"])

    s1 = await backend.runs.list_runs(session_id="s1")
    assert [r.id for r in s1] == _ids_newest_first([r for r in runs if r.session_id == "s1"])

    beta_s2 = await backend.runs.list_runs(agent="beta", session_id="s2")
    assert [r.id for r in beta_s2] == [
        r.id for r in runs if (r.agent, r.session_id) == ("beta", "s2")
    ]

    assert await backend.runs.list_runs(agent="gamma") == []
    assert await backend.runs.list_runs(agent="alpha", session_id="s3") == []


async def test_list_runs_limit(backend: StateBackend) -> None:
    runs = await _seed_runs(backend)

    top2 = await backend.runs.list_runs(limit=2)
    assert [r.id for r in top2] == _ids_newest_first(runs)[:2]
    assert len(await backend.runs.list_runs(agent="beta", limit=1)) == 1
    assert await backend.runs.list_runs(limit=0) == []
    assert len(await backend.runs.list_runs(limit=100)) == len(runs)


async def test_list_runs_returns_saved_state_ordered_by_creation(backend: StateBackend) -> None:
    runs = await _seed_runs(backend)
    oldest = min(runs, key=lambda r: r.created_at)
    oldest.status = RunStatus.FAILED
    await backend.runs.save(oldest)

    listed = await backend.runs.list_runs()
    assert [r.id for r in listed] == _ids_newest_first(runs)  # saving does not reorder
    assert listed[-1].status is RunStatus.FAILED
    assert listed[-1].version == 2


# --- history ----------------------------------------------------------------------------

KEY = SessionKey(agent="support", session_id="s-1", namespace="ns", tenant="acme")


def _turn(n: int) -> list[Message]:
    call = ToolCall(id=f"c{n}", name="lookup", arguments={"n": n})
    return [
        Message.user(f"question {n}"),
        Message.assistant("", [call]),
        Message.tool(f"result {n}", tool_call_id=f"c{n}", name="lookup"),
        Message.assistant(f"answer {n} ✓"),
    ]


async def test_history_append_read_in_order(backend: StateBackend) -> None:
    await backend.history.append(KEY, _turn(1))
    await backend.history.append(KEY, _turn(2))

    history = await backend.history.read(KEY)

    assert history == _turn(1) + _turn(2)
    assert history[1].tool_calls[0].arguments == {"n": 1}
    assert history[2].tool_call_id == "c1"
    assert history[2].name == "lookup"


async def test_history_read_limit_returns_last_messages_chronologically(
    backend: StateBackend,
) -> None:
    await backend.history.append(KEY, _turn(1))
    await backend.history.append(KEY, _turn(2))
    everything = _turn(1) + _turn(2)

    assert await backend.history.read(KEY, limit=3) == everything[-3:]
    assert await backend.history.read(KEY, limit=1) == everything[-1:]
    assert await backend.history.read(KEY, limit=100) == everything
    assert await backend.history.read(KEY, limit=0) == []


async def test_history_shares_no_message_with_its_callers(backend: StateBackend) -> None:
    """What a caller appended or read is its own: changing it changes no stored turn."""
    appended = _turn(1)
    await backend.history.append(KEY, appended)
    appended[0].content = "changed after the append"
    read = await backend.history.read(KEY)
    read[1].tool_calls[0].arguments["n"] = 99
    read[2].content = "changed after the read"

    assert await backend.history.read(KEY) == _turn(1)


async def test_history_of_unknown_session_is_empty(backend: StateBackend) -> None:
    assert await backend.history.read(KEY) == []
    assert await backend.history.read(KEY, limit=5) == []
    assert await backend.history.clear(KEY) == 0


async def test_history_append_nothing_is_a_no_op(backend: StateBackend) -> None:
    await backend.history.append(KEY, [])
    assert await backend.history.read(KEY) == []


async def test_history_clear_returns_count_and_empties(backend: StateBackend) -> None:
    await backend.history.append(KEY, _turn(1))
    await backend.history.append(KEY, [Message.user("more")])

    assert await backend.history.clear(KEY) == 5
    assert await backend.history.read(KEY) == []
    assert await backend.history.clear(KEY) == 0

    await backend.history.append(KEY, [Message.user("after clear")])
    assert await backend.history.read(KEY) == [Message.user("after clear")]


async def test_history_returns_copies(backend: StateBackend) -> None:
    messages = [Message.user("original")]
    await backend.history.append(KEY, messages)
    messages[0].content = "mutated after append"

    read = await backend.history.read(KEY)
    read[0].content = "mutated after read"

    assert await backend.history.read(KEY) == [Message.user("original")]


@pytest.mark.parametrize("part", ["agent", "session_id", "namespace", "tenant"])
async def test_sessions_are_isolated_by_every_key_part(backend: StateBackend, part: str) -> None:
    other = SessionKey(**{**_key_fields(KEY), part: "other"})
    await backend.history.append(KEY, [Message.user("mine")])
    await backend.history.append(other, [Message.user("theirs")])

    assert await backend.history.read(KEY) == [Message.user("mine")]
    assert await backend.history.read(other) == [Message.user("theirs")]

    assert await backend.history.clear(other) == 1
    assert await backend.history.read(KEY) == [Message.user("mine")]


async def test_sessions_with_separator_characters_do_not_collide(backend: StateBackend) -> None:
    # Joined with ":" these two would both read "a:b:c:agent:s".
    first = SessionKey(tenant="a:b", namespace="c", agent="agent", session_id="s")
    second = SessionKey(tenant="a", namespace="b:c", agent="agent", session_id="s")
    third = SessionKey(tenant="a%3Ab", namespace="c", agent="agent", session_id="s")
    await backend.history.append(first, [Message.user("first")])
    await backend.history.append(second, [Message.user("second")])
    await backend.history.append(third, [Message.user("third")])

    assert await backend.history.read(first) == [Message.user("first")]
    assert await backend.history.read(second) == [Message.user("second")]
    assert await backend.history.read(third) == [Message.user("third")]


def _key_fields(key: SessionKey) -> dict[str, str]:
    return {
        "agent": key.agent,
        "session_id": key.session_id,
        "namespace": key.namespace,
        "tenant": key.tenant,
    }


# --- action results ---------------------------------------------------------------------


async def test_results_are_kept_beside_the_run_by_call_id(backend: StateBackend) -> None:
    big = "x" * 100_000
    first = ActionResult(call_id="c1", name="search", ok=True, content=big, duration_ms=3.5)
    second = ActionResult(call_id="c2", name="fetch", ok=False, content="timed out")
    await backend.runs.put_result("run_a", first)
    await backend.runs.put_result("run_a", second)
    await backend.runs.put_result(
        "run_b", ActionResult(call_id="c1", name="x", ok=True, content="b")
    )

    found = await backend.runs.get_results("run_a", ["c1", "c2", "missing"])

    assert found == {"c1": first, "c2": second}
    assert (await backend.runs.get_results("run_b", ["c1"]))["c1"].content == "b"
    assert await backend.runs.get_results("run_a", []) == {}
    assert await backend.runs.get_results("nobody", ["c1"]) == {}


async def test_writing_a_result_again_replaces_it(backend: StateBackend) -> None:
    await backend.runs.put_result("r", ActionResult(call_id="c", name="t", ok=False, content="1"))
    await backend.runs.put_result("r", ActionResult(call_id="c", name="t", ok=True, content="2"))
    [(call_id, result)] = (await backend.runs.get_results("r", ["c", "c"])).items()
    assert (call_id, result.ok, result.content) == ("c", True, "2")


async def test_parallel_result_writers_never_conflict(backend: StateBackend) -> None:
    results = [ActionResult(call_id=f"c{i}", name="t", ok=True, content=str(i)) for i in range(20)]
    await asyncio.gather(*(backend.runs.put_result("r", r) for r in results))
    found = await backend.runs.get_results("r", [r.call_id for r in results])
    assert [found[f"c{i}"].content for i in range(20)] == [str(i) for i in range(20)]


async def test_checkpoint_writes_the_run_and_its_results_together(backend: StateBackend) -> None:
    run = await backend.runs.create(RunState(agent="a", query="q"))
    run.iteration = 1
    results = [ActionResult(call_id=f"c{i}", name="t", ok=True, content=str(i)) for i in range(3)]

    saved = await backend.runs.checkpoint(run, results)

    assert saved is run and run.version == 2
    assert (await backend.runs.get(run.id)).iteration == 1
    found = await backend.runs.get_results(run.id, ["c0", "c1", "c2"])
    assert [found[f"c{i}"].content for i in range(3)] == ["0", "1", "2"]
    await backend.runs.checkpoint(run)  # no results: a plain save
    assert (await backend.runs.get(run.id)).version == 3


async def test_a_stale_checkpoint_conflicts_and_writes_no_run(backend: StateBackend) -> None:
    run = await backend.runs.create(RunState(agent="a", query="q"))
    other = await backend.runs.get(run.id)
    await backend.runs.save(other)
    run.answer = "lost"

    with pytest.raises(ConflictError):
        await backend.runs.checkpoint(
            run, [ActionResult(call_id="c", name="t", ok=True, content="x")]
        )

    stored = await backend.runs.get(run.id)
    assert stored.version == 2 and stored.answer is None
    with pytest.raises(NotFoundError):
        await backend.runs.checkpoint(RunState(agent="a", query="never created"))

"""The usage ledger in every backend: a finished run's usage lines are written with its
terminal save, replaced (never added) when the run is saved ended again, and read back per
tenant, window and agent; a running run writes none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from astromesh.models.types import Usage
from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.base import StateBackend
from astromesh.stores.tiered import TieredBackend
from astromesh.telemetry.usage import UsageGroup, UsageQuery, summarise

DAY = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _run(agent: str, tenant: str, *, at: datetime = DAY) -> RunState:
    run = RunState(agent=agent, tenant=tenant, query="q", created_at=at)
    run.usage.add(
        provider="house",
        model="m1",
        role="default",
        usage=Usage(tokens_in=10, tokens_out=5),
        cost=0.25,
    )
    run.usage.add(
        provider="house",
        model="m2",
        role="summary",
        usage=Usage(tokens_in=3, tokens_out=1),
        cost=0.5,
    )
    return run


def _window(tenant: str, agent: str | None = None) -> UsageQuery:
    return UsageQuery(tenant, DAY - timedelta(days=1), DAY + timedelta(days=1), agent)


async def test_a_finished_run_is_in_the_ledger_once_whatever_the_saves(
    backend: StateBackend,
) -> None:
    run = await backend.runs.create(_run("helper", "acme"))
    assert await backend.usage.entries(_window("acme")) == []  # running: not yet

    run.status = RunStatus.SUCCEEDED
    await backend.runs.save(run)
    await backend.runs.save(run)  # a retried final save: replaced, not added

    entries = await backend.usage.entries(_window("acme"))
    total, by_model = summarise(entries, "model")
    assert (total.runs, total.calls, total.tokens_in, total.tokens_out) == (1, 2, 13, 6)
    assert total.cost == pytest.approx(0.75)
    assert [(g.key, g.tokens_in, g.cost) for g in by_model] == [
        ("house/m1", 10, 0.25),
        ("house/m2", 3, 0.5),
    ]
    assert {e.run_id for e in entries} == {run.id}


async def test_the_ledger_reads_one_tenant_one_window_one_agent(backend: StateBackend) -> None:
    for agent, tenant, at in (
        ("helper", "acme", DAY),
        ("other", "acme", DAY),
        ("helper", "globex", DAY),
        ("helper", "acme", DAY - timedelta(days=3)),  # outside the window
    ):
        run = _run(agent, tenant, at=at)
        run.status = RunStatus.FAILED
        await backend.runs.create(run)  # a run stored ended at once (a durable copy)

    assert len({e.run_id for e in await backend.usage.entries(_window("acme"))}) == 2
    assert {e.agent for e in await backend.usage.entries(_window("acme", "helper"))} == {"helper"}
    assert len({e.run_id for e in await backend.usage.entries(_window("globex"))}) == 1
    assert await backend.usage.entries(_window("nobody")) == []


async def test_a_run_that_called_no_model_still_counts_as_a_run(backend: StateBackend) -> None:
    run = RunState(agent="helper", tenant="acme", query="q", created_at=DAY)
    run.status = RunStatus.CANCELLED
    await backend.runs.create(run)

    total, by_model = summarise(await backend.usage.entries(_window("acme")), "model")
    assert (total.runs, total.tokens_in, total.cost) == (1, 0, 0.0)
    assert by_model == []


async def test_the_tiered_backend_keeps_the_ledger_in_postgres_only(request, tmp_path) -> None:
    from tests.stores.conftest import make_backend

    hot = await make_backend("redis", request, tmp_path)
    durable = await make_backend("postgres", request, tmp_path)
    tiered = TieredBackend(hot, durable)
    try:
        run = await tiered.runs.create(_run("helper", "acme"))
        run.status = RunStatus.SUCCEEDED
        await tiered.runs.save(run)

        assert len(await durable.usage.entries(_window("acme"))) == 2
        assert await hot.usage.entries(_window("acme")) == []
        assert tiered.usage is durable.usage
    finally:
        await tiered.close()


async def test_the_stores_sums_are_the_entries_sums_for_every_grouping(
    backend: StateBackend,
) -> None:
    """SQL stores sum in the database; whatever sums them, the answer is the entries' own."""
    for index, (agent, status, days) in enumerate(
        [
            ("helper", RunStatus.SUCCEEDED, 0),
            ("helper", RunStatus.FAILED, 0),
            ("writer", RunStatus.SUCCEEDED, 0),
            ("writer", RunStatus.SUCCEEDED, -1),  # the day before, still in the window
            ("other", RunStatus.CANCELLED, 0),
        ]
    ):
        run = _run(agent, "acme", at=DAY + timedelta(days=days, minutes=index))
        if agent == "other":
            run.usage = type(run.usage)()  # called no model
        run.status = status
        await backend.runs.create(run)
    await backend.runs.create(
        _run("helper", "globex").model_copy(update={"status": RunStatus.SUCCEEDED})
    )

    def close(a: UsageGroup, b: UsageGroup) -> bool:
        return (a.key, a.runs, a.calls, a.tokens_in, a.tokens_out) == (
            b.key,
            b.runs,
            b.calls,
            b.tokens_in,
            b.tokens_out,
        ) and a.cost == pytest.approx(b.cost)

    for query in (
        UsageQuery("acme", DAY - timedelta(days=2), DAY + timedelta(days=1)),
        UsageQuery("acme", DAY - timedelta(days=2), DAY + timedelta(days=1), agent="writer"),
        UsageQuery(
            "acme", DAY - timedelta(days=2), DAY + timedelta(days=1), agents=frozenset({"helper"})
        ),
        UsageQuery("acme", DAY - timedelta(days=2), DAY + timedelta(days=1), agents=frozenset()),
    ):
        entries = await backend.usage.entries(query)
        for grouping in (None, "day", "agent", "model", "agent_status", "run"):
            want_total, want = summarise(entries, grouping)
            got_total, got = await backend.usage.summary(query, grouping)
            assert close(got_total, want_total), (query, grouping)
            assert len(got) == len(want) and all(map(close, got, want)), (query, grouping)

    everything = UsageQuery("acme", DAY - timedelta(days=2), DAY + timedelta(days=1))
    total, by_day = await backend.usage.summary(everything, "day")
    assert total.runs == 5 and [(g.key, g.runs) for g in by_day] == [
        ("2026-04-30", 1),
        ("2026-05-01", 4),
    ]
    _, by_model = await backend.usage.summary(everything, "model")
    assert [(g.key, g.runs) for g in by_model] == [("house/m1", 4), ("house/m2", 4)]

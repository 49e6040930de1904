"""Spans are kept with the run on every backend (memory, SQLite, Redis, PostgreSQL, and Redis
in front of PostgreSQL): a run on each store is read back whole as ``GET /v1/traces/{id}``
shows it, from the store alone; and the bound on spans per run holds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from astromesh.runs.state import RunState
from astromesh.runs.trace import MAX_SPANS_PER_RUN, MAX_TRACE_BYTES, RunTrace
from astromesh.runs.trace_views import trace_document
from astromesh.runtime import AgentRuntime
from astromesh.stores.base import StateBackend
from astromesh.stores.factory import open_backend
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres", "tiered"])
async def state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    kind = request.param
    if kind == "memory":
        backend = open_backend("memory")
    elif kind == "sqlite":
        backend = open_backend("sqlite", sqlite_path=tmp_path / "state.db")
    elif kind == "redis":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        backend = open_backend("redis", redis_url=url, redis_prefix=prefix)
    else:
        dsn = request.getfixturevalue("postgres_schema")
        if kind == "postgres":
            backend = open_backend("postgres", postgres_dsn=dsn)
        else:  # Redis hot, PostgreSQL durable: the deployed shape
            backend = open_backend(
                "redis",
                redis_url=request.getfixturevalue("redis_url"),
                redis_prefix=request.getfixturevalue("redis_prefix"),
                postgres_dsn=dsn,
            )
    await backend.open()
    yield backend
    await backend.close()


async def test_a_runs_spans_are_read_back_from_each_store(state, agents_dir, openai_server):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(Reply(tool_calls=[("add", {"a": 1, "b": 2})]), Reply("3."))
    async with AgentRuntime(agents_dir, env={}, state=state) as runtime:
        run = await runtime.run("helper", "1 + 2?")
    # read back from the store alone, as another Lambda would (the route's own view)
    stored = await state.runs.get(run.id)
    document = await trace_document(stored, state.runs.get)
    assert document["span_count"] == len(run.trace.spans) > 8
    assert stored.trace == run.trace
    [root] = document["spans"]
    assert root["name"] == "invoke_agent helper"
    assert any(c["name"] == "astromesh.act" for c in root["children"])


def test_the_spans_kept_per_run_are_bounded():
    run = RunState(agent="a", query="q", trace=RunTrace(trace_id="1" * 32, span_id="2" * 16))
    record = {"name": "x", "span_id": "3" * 16, "parent_span_id": None, "attributes": {}}
    run.trace.keep([record] * (MAX_SPANS_PER_RUN - 2))
    run.trace.keep([record] * 5)
    assert (len(run.trace.spans), run.trace.dropped) == (MAX_SPANS_PER_RUN, 3)


def test_the_bytes_kept_per_run_are_bounded():
    run = RunState(agent="a", query="q", trace=RunTrace(trace_id="1" * 32, span_id="2" * 16))
    big = {"name": "chat", "span_id": "3" * 16, "attributes": {"gen_ai.input.messages": "x" * 4000}}
    run.trace.keep([big] * 100)
    assert run.trace.size <= MAX_TRACE_BYTES < run.trace.size + 4100
    assert len(run.trace.spans) + run.trace.dropped == 100 and run.trace.dropped > 30


def test_the_bytes_counted_are_the_spans_json_in_utf8_whatever_they_hold():
    trace = RunTrace(trace_id="0" * 32, span_id="0" * 16)
    plain = {"name": "chat", "attributes": {"text": "héllo"}}
    trace.keep([plain])
    compact = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    assert trace.size == len(compact.encode())
    # Text that is not valid Unicode and values JSON has no type for are still counted.
    trace.keep([{"text": "half \ud800 pair"}, {"value": object()}])
    assert len(trace.spans) == 3 and trace.size > len(json.dumps(plain).encode()) + 20

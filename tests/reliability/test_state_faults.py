"""State faults are visible, bounded and lossless: Redis killed and restarted mid-traffic.

Each test starts its own Redis on a free port (the machine's Redis is never touched) and
uses a real PostgreSQL schema, with the state backend ``redis`` tiered over PostgreSQL. It
kills Redis while REST runs and WhatsApp deliveries (with replays) are in flight, restarts it
(empty, as a Redis without persistence does), and then accounts for everything: every run
that was answered with an id is stored with a final status (succeeded, or failed with a
reason), every 5xx is ``503 state_unavailable`` with ``Retry-After`` (never a ``500``), every
accepted message got exactly one reply, and no replay was answered again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from astromesh.channels import ServerSettings, create_app
from astromesh.channels.messaging.inbox import FAILURE_NOTICE
from astromesh.runtime import AgentRuntime
from astromesh.stores.base import SessionKey
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    PlatformServer,
    whatsapp_env,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.own_redis import OwnRedis
from tests.support.state_faults import assert_unavailable, deliver, run, stored


@pytest.fixture
async def app(
    tmp_path: Path,
    own_redis: OwnRedis,
    postgres_schema: str,
    graph: PlatformServer,
    model: ScriptedOpenAIServer,
) -> AsyncIterator[FastAPI]:
    """The local app over Redis (the test's own) tiered on PostgreSQL, WhatsApp configured."""
    agents = tmp_path / "agents"
    write_agent(agents, model=primary(model.url))
    env = whatsapp_env(graph.url) | {
        "ASTROMESH_STATE_BACKEND": "redis",
        "ASTROMESH_REDIS_URL": own_redis.url,
        "ASTROMESH_POSTGRES_DSN": postgres_schema,
    }
    runtime = AgentRuntime(agents, env=env)
    application = create_app(runtime, ServerSettings(max_inflight_runs=200))
    await runtime.state()  # open (and migrate) while both servers are up
    yield application
    await application.state.services.aclose()
    await runtime.close()


async def drain(app: FastAPI) -> None:
    await app.state.channel_hub.drain(timeout=60)


async def test_runs_across_a_redis_kill_are_503_or_recorded_never_500(
    app: FastAPI, client: httpx.AsyncClient, own_redis: OwnRedis, model: ScriptedOpenAIServer
) -> None:
    # 15 runs in flight (the model takes 1 s) when Redis dies.
    model.push(*(Reply(f"answer {i}", delay=1.0) for i in range(15)))
    in_flight = [asyncio.create_task(run(client, f"inflight-{i}")) for i in range(15)]
    deadline = time.monotonic() + 10
    while len(model.requests) < 15 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # every run is created and waiting on the model
    own_redis.kill()

    # During the outage: every new run is refused quickly, as 503 + Retry-After.
    started = time.monotonic()
    during = await asyncio.gather(*(run(client, f"outage-{i}") for i in range(10)))
    elapsed = time.monotonic() - started
    for response in during:
        assert_unavailable(response)
    assert elapsed < 5, f"10 refused runs took {elapsed:.1f}s"

    first = await asyncio.gather(*in_flight)
    statuses = Counter(r.status_code for r in first)
    assert set(statuses) <= {200, 503}, statuses  # never a bare 500
    for response in first:
        if response.status_code == 503:
            assert_unavailable(response)

    own_redis.start()  # empty: the hot copies of the runs are gone
    # Every run answered with an id is stored durably with its final status and a reason.
    answered = [r.json() for r in first if r.status_code == 200]
    assert answered, "the runs in flight should have been answered with their run id"
    for body in answered:
        record = await stored(client, body["run_id"])
        assert record["status"] in {"succeeded", "failed"}, record
        if record["status"] == "failed":
            assert record["error"], record  # failed with the reason
    # No run anywhere is left "running": the store holds exactly the answered ones, ended.
    state = await app.state.services.runtime.state()
    runs = await state.runs.list_runs(agent="helper", limit=100)
    assert {r.id for r in runs} == {b["run_id"] for b in answered}
    assert all(r.status.is_terminal for r in runs), [(r.id, r.status) for r in runs]

    # After the restart the pooled connections are stale: new runs still all succeed.
    model.push(*(Reply(f"after {i}") for i in range(10)))
    after = await asyncio.gather(*(run(client, f"after-{i}") for i in range(10)))
    assert [r.status_code for r in after] == [200] * 10, [r.text for r in after]
    assert {r.json()["status"] for r in after} == {"succeeded"}


async def test_messages_across_a_redis_restart_are_answered_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    own_redis: OwnRedis,
    model: ScriptedOpenAIServer,
    graph: PlatformServer,
) -> None:
    # Ten messages, each delivered three times at once, answered before anything fails.
    model.push(*(Reply("answered") for _ in range(10)))
    first = await asyncio.gather(
        *(deliver(client, f"wamid.m{i}", f"m{i}") for i in range(10) for _ in range(3))
    )
    assert {r.status_code for r in first} == {200}
    assert sum(r.json()["accepted"] for r in first) == 10
    await drain(app)

    # Five more are being answered (a slow model) when Redis dies.
    model.push(*(Reply("answered", delay=1.0) for _ in range(5)))
    flying = await asyncio.gather(*(deliver(client, f"wamid.f{i}", f"f{i}") for i in range(5)))
    assert sum(r.json()["accepted"] for r in flying) == 5
    deadline = time.monotonic() + 10
    while len(model.requests) < 15 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    own_redis.kill()
    during = await asyncio.gather(*(deliver(client, f"wamid.d{i}", f"d{i}") for i in range(4)))
    await drain(app)  # the flying ones end while Redis is down

    # Redis comes back empty: the claims it held are gone, PostgreSQL's are not.
    own_redis.start()
    model.push(*(Reply("answered") for _ in range(14)))
    replays = await asyncio.gather(
        *(deliver(client, f"wamid.{p}{i}", f"{p}{i}") for p in "mf" for i in range(5))
    )
    fresh = await asyncio.gather(*(deliver(client, f"wamid.n{i}", f"n{i}") for i in range(10)))
    await drain(app)

    for response in during:  # claimed durably and acknowledged, or refused for redelivery
        assert response.status_code in {200, 503}, response.text
        if response.status_code == 503:
            assert_unavailable(response)
    assert [r.status_code for r in replays] == [200] * 10
    assert sum(r.json()["accepted"] for r in replays) == 0, "a replay was answered again"
    assert [r.status_code for r in fresh] == [200] * 10, [r.text for r in fresh]
    assert sum(r.json()["accepted"] for r in fresh) == 10

    # Accounting: every acknowledged message got exactly one reply (the answer, or the
    # apology for those whose run the outage ended), and nothing else was sent.
    accepted = {f"m{i}" for i in range(10)} | {f"f{i}" for i in range(5)}
    accepted |= {f"n{i}" for i in range(10)}
    accepted |= {f"d{i}" for i, r in enumerate(during) if r.status_code == 200}
    graph.wait_for(len(accepted), timeout=20)
    await asyncio.sleep(0.3)  # nothing more is on its way
    recipients = Counter(post.body["to"] for post in graph.posts)
    assert set(recipients) == accepted, recipients
    assert all(count == 1 for count in recipients.values()), recipients
    replied = {post.body["to"]: post.text for post in graph.posts}
    assert {replied[f"m{i}"] for i in range(10)} == {"answered"}
    assert {replied[f"n{i}"] for i in range(10)} == {"answered"}  # no stale connection lost one
    assert {replied[f"f{i}"] for i in range(5)} <= {"answered", FAILURE_NOTICE}


async def test_every_redis_client_reports_a_dead_redis_as_state_unavailable(
    closed_port_url: str,
) -> None:
    """The one exception class the API turns into 503, from every store built on Redis,
    within a second (retries are bounded)."""
    from astromesh.channels.messaging.guards import RedisGuards
    from astromesh.errors import StateUnavailable
    from astromesh.guardrails.ledger import RedisBudgetLedger
    from astromesh.stores.redis import RedisBackend

    url = closed_port_url.replace("http://", "redis://")
    backend = RedisBackend(url)
    guards = RedisGuards(url, prefix="t")
    ledger = RedisBudgetLedger(url)
    calls = [
        backend.runs.get("run_x"),
        backend.history.read(SessionKey("a", "s")),
        guards.claim("k"),
        ledger.spent("k"),
    ]
    try:
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StateUnavailable) as caught:
                await call
            assert caught.value.code == "state_unavailable" and caught.value.status == 503
            assert time.monotonic() - started < 1.5
    finally:
        await backend.close()
        await guards.aclose()
        await ledger.aclose()


async def test_while_redis_is_down_ended_runs_are_read_durably_and_others_are_503(
    app: FastAPI, client: httpx.AsyncClient, own_redis: OwnRedis, model: ScriptedOpenAIServer
) -> None:
    model.push(Reply("done"))
    ended = (await run(client, "ended")).json()
    own_redis.kill()
    assert (await stored(client, ended["run_id"]))["status"] == "succeeded"
    assert_unavailable(await client.get("/v1/runs/run_unknown_while_down"))

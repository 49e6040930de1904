"""State faults of PostgreSQL: the server crashes (SIGKILL of every process) mid-traffic and
comes back through crash recovery on the same port, as an RDS failover does.

Each test starts its own PostgreSQL (``tests.support.own_postgres``), never the shared one.
Two deployments are covered: PostgreSQL as the only state store, and Redis hot tier over
PostgreSQL (the AWS shape), whose durable copy of ended runs must not be lost when
PostgreSQL is the one that fails. Afterwards everything is accounted for: every run answered
with an id ends stored with a final status (and a reason when it failed), every 5xx is
``503 state_unavailable`` with ``Retry-After`` (never ``500``), refusals during the outage
are bounded in time, and once the server is back the pool's dead connections cost no
request.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from astromesh.channels import ServerSettings, create_app
from astromesh.channels.messaging.inbox import FAILURE_NOTICE
from astromesh.errors import StateUnavailable
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    PlatformServer,
    whatsapp_env,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.own_postgres import OwnPostgres
from tests.support.own_redis import OwnRedis
from tests.support.state_faults import assert_unavailable, deliver, run, stored


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    server.start()
    yield server
    server.remove()


async def _app(runtime: AgentRuntime) -> FastAPI:
    application = create_app(runtime, ServerSettings(max_inflight_runs=200))
    await runtime.state()  # open (and migrate) while the servers are up
    return application


@pytest.fixture(params=["postgres", "redis+postgres"])
async def app(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    own_postgres: OwnPostgres,
    own_redis: OwnRedis,
    graph: PlatformServer,
    model: ScriptedOpenAIServer,
) -> AsyncIterator[FastAPI]:
    """The local app with PostgreSQL alone, or Redis tiered over it; WhatsApp configured."""
    agents = tmp_path / "agents"
    write_agent(agents, model=primary(model.url))
    # Refusals during the outage wait 2 s, not 5 (read from the process environment, as
    # every PostgreSQL connection setting is).
    monkeypatch.setenv("ASTROMESH_POSTGRES_TIMEOUT", "2")
    env = whatsapp_env(graph.url) | {"ASTROMESH_POSTGRES_DSN": own_postgres.dsn}
    if request.param == "postgres":
        env["ASTROMESH_STATE_BACKEND"] = "postgres"
    else:
        env |= {"ASTROMESH_STATE_BACKEND": "redis", "ASTROMESH_REDIS_URL": own_redis.url}
    runtime = AgentRuntime(agents, env=env)
    application = await _app(runtime)
    application.state.deployment = request.param
    yield application
    await application.state.services.aclose()
    await runtime.close()


async def wait_for_requests(model: ScriptedOpenAIServer, count: int) -> None:
    deadline = time.monotonic() + 15
    while len(model.requests) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(model.requests) >= count, "the runs never reached the model"


async def test_runs_across_a_postgres_crash_are_503_or_recorded_never_500(
    app: FastAPI,
    client: httpx.AsyncClient,
    own_postgres: OwnPostgres,
    model: ScriptedOpenAIServer,
) -> None:
    # 10 runs waiting on the model (2 s) when PostgreSQL crashes.
    model.push(*(Reply(f"answer {i}", delay=2.0) for i in range(10)))
    in_flight = [asyncio.create_task(run(client, f"inflight-{i}")) for i in range(10)]
    await wait_for_requests(model, 10)
    own_postgres.kill()

    # During the outage: a run that cannot be stored is refused as 503 + Retry-After, in
    # bounded time (the pool's wait for a connection, not psycopg's 30 s default); with
    # Redis in front, a run can still be taken and its end kept in Redis meanwhile.
    model.push(*(Reply(f"outage {i}") for i in range(5)))
    started = time.monotonic()
    during = await asyncio.gather(*(run(client, f"outage-{i}") for i in range(5)))
    outage_seconds = time.monotonic() - started
    for response in during:
        if response.status_code != 200:
            assert_unavailable(response)
    if app.state.deployment == "postgres":
        assert {r.status_code for r in during} == {503}
        # Bounded by the configured 2 s wait (concurrent requests wait together), far
        # from psycopg's default 30 s per request.
        assert outage_seconds < 15, f"5 refused runs took {outage_seconds:.1f}s"

    # The server comes back while the in-flight runs are still ending (their final write
    # is retried for a few seconds).
    own_postgres.start()
    first = await asyncio.gather(*in_flight)
    statuses = Counter(r.status_code for r in first)
    assert set(statuses) <= {200, 503}, statuses  # never a bare 500
    for response in first:
        if response.status_code == 503:
            assert_unavailable(response)

    answered = [r.json() for r in [*first, *during] if r.status_code == 200]
    assert answered, "the runs in flight should have been answered with their run id"
    for body in answered:
        record = await stored(client, body["run_id"])
        assert record["status"] in {"succeeded", "failed"}, record
        if record["status"] == "failed":
            assert record["error"], record  # failed with the reason
    # After the restart the pool's connections are dead: new runs still all succeed.
    model.push(*(Reply(f"after {i}") for i in range(10)))
    after = await asyncio.gather(*(run(client, f"after-{i}") for i in range(10)))
    assert [r.status_code for r in after] == [200] * 10, [r.text for r in after]
    assert {r.json()["status"] for r in after} == {"succeeded"}

    # Nothing is left "running", and every answered run has its durable copy (with Redis in
    # front, those owed while PostgreSQL was down were written as later runs ended).
    state = await app.state.services.runtime.state()
    durable = getattr(state, "durable_backend", state)
    for body in answered:
        record = await durable.runs.get(body["run_id"])
        assert record.status.is_terminal, (record.id, record.status)


async def test_messages_across_a_postgres_crash_are_answered_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    own_postgres: OwnPostgres,
    model: ScriptedOpenAIServer,
    graph: PlatformServer,
) -> None:
    # Five messages are being answered (a slow model) when PostgreSQL crashes.
    model.push(*(Reply("answered", delay=1.5) for _ in range(5)))
    flying = await asyncio.gather(*(deliver(client, f"wamid.f{i}", f"f{i}") for i in range(5)))
    assert sum(r.json()["accepted"] for r in flying) == 5
    await wait_for_requests(model, 5)
    own_postgres.kill()
    during = await asyncio.gather(*(deliver(client, f"wamid.d{i}", f"d{i}") for i in range(4)))
    for response in during:  # acknowledged, or refused so that Meta delivers it again
        assert response.status_code in {200, 503}, response.text
        if response.status_code == 503:
            assert_unavailable(response)
    await app.state.channel_hub.drain(timeout=60)

    own_postgres.start()
    # Meta redelivers everything it sent: what was answered is not answered again; what
    # was refused during the outage is answered now.
    model.push(*(Reply("answered") for _ in range(20)))
    replays = await asyncio.gather(
        *(
            deliver(client, f"wamid.{p}{i}", f"{p}{i}")
            for p, n in [("f", 5), ("d", 4)]
            for i in range(n)
        )
    )
    fresh = await asyncio.gather(*(deliver(client, f"wamid.n{i}", f"n{i}") for i in range(5)))
    await app.state.channel_hub.drain(timeout=60)
    assert [r.status_code for r in [*replays, *fresh]] == [200] * 14, [r.text for r in replays]
    assert sum(r.json()["accepted"] for r in fresh) == 5

    # Accounting: every message got exactly one reply (the answer, or the apology for a
    # run the outage ended), and nothing else was sent.
    expected = {f"f{i}" for i in range(5)} | {f"d{i}" for i in range(4)}
    expected |= {f"n{i}" for i in range(5)}
    graph.wait_for(len(expected), timeout=30)
    await asyncio.sleep(0.3)  # nothing more is on its way
    recipients = Counter(post.body["to"] for post in graph.posts)
    assert set(recipients) == expected, recipients
    assert all(count == 1 for count in recipients.values()), recipients
    replied = {post.body["to"]: post.text for post in graph.posts}
    assert {replied[f"n{i}"] for i in range(5)} == {"answered"}
    assert {replied[f"f{i}"] for i in range(5)} <= {"answered", FAILURE_NOTICE}


@pytest.mark.parametrize("app", ["redis+postgres"], indirect=True)
async def test_runs_ended_while_postgres_is_down_get_their_durable_copy_when_it_returns(
    app: FastAPI,
    client: httpx.AsyncClient,
    own_postgres: OwnPostgres,
    model: ScriptedOpenAIServer,
) -> None:
    """With Redis in front, runs that end while PostgreSQL is down (for longer than any
    retry) lose nothing: they are answered and read from Redis meanwhile, and copied durably
    once PostgreSQL is back."""
    model.push(*(Reply(f"answer {i}", delay=1.0) for i in range(5)))
    in_flight = [asyncio.create_task(run(client, f"down-{i}")) for i in range(5)]
    await wait_for_requests(model, 5)
    own_postgres.kill()  # the agents were resolved; the runs end with PostgreSQL down
    answered = await asyncio.gather(*in_flight)
    assert [r.status_code for r in answered] == [200] * 5, [r.text for r in answered]
    ids = [r.json()["run_id"] for r in answered]
    state = await app.state.services.runtime.state()
    for run_id in ids:  # answered, and readable meanwhile from the hot tier
        assert (await state.runs.get(run_id)).status.value == "succeeded"
        with pytest.raises(StateUnavailable):
            await state.durable_backend.runs.get(run_id)

    own_postgres.start()
    model.push(Reply("after"))
    after = await run(client, "after")  # the first run ending settles what is owed
    assert after.status_code == 200, after.text
    for run_id in [*ids, after.json()["run_id"]]:
        record = await state.durable_backend.runs.get(run_id)
        assert record.status.value == "succeeded" and record.answer, record

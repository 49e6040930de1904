"""Guardrails before persistence: with ``pii_detection`` on input, nothing raw is ever stored.

An agent redacts personal data from its input; another blocks it. Queries and run contexts
carrying an e-mail address, a phone number and a card number go through every way a run
starts here: REST synchronous, asynchronous (``?mode=async``) and streamed, and WhatsApp.
Then every byte the deployment keeps is searched for the raw values:

- state in SQLite: every file of the state folder (runs, history, episodes, and semantic
  memory's own database), the ``-wal`` and ``-shm`` files included, read while the server
  still has its connections open (nothing is checkpointed away first);
- state in Redis tiered over PostgreSQL: every key and value of the test's own Redis and every
  row of every table of the test's PostgreSQL schema;
- and every log record of the run (DEBUG and up) and whatever reached stdout and stderr.

The values must appear nowhere, while the redacted placeholders show the runs did happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from fastapi import FastAPI
from psycopg import sql

from astromesh.channels import ServerSettings, create_app
from astromesh.runtime import AgentRuntime
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    PlatformServer,
    signed,
    wa_text,
    whatsapp_delivery,
    whatsapp_env,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer
from tests.support.own_redis import OwnRedis

EMAIL = "jane.roe.pii@example.org"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
CONTEXT_EMAIL = "ctx.owner.pii@example.net"
CONTEXT_PHONE = "+44 20 7946 0321"
SENDER = "15550001111"  # the WhatsApp sender's id: kept, it is whom the reply goes to

QUERY = f"Write to {EMAIL} or call {PHONE}; my card is {CARD}."
CONTEXT = {
    "owner": CONTEXT_EMAIL,
    "notes": [f"callback {CONTEXT_PHONE}"],
    CONTEXT_EMAIL: "key",
    "card_on_file": int(CARD.replace(" ", "")),  # a JSON number
}

RAW = [
    EMAIL,
    "jane.roe.pii",
    PHONE,
    "7946 0958",
    "79460958",
    CARD,
    "4111111111111111",
    CONTEXT_EMAIL,
    "ctx.owner.pii",
    CONTEXT_PHONE,
    "7946 0321",
]
"""The raw values and the fragments that would betray them (local parts, digit runs)."""

REDACT = {"input": [{"type": "pii_detection", "action": "redact"}]}
BLOCK = {"input": [{"type": "pii_detection", "action": "block", "entities": ["credit_card"]}]}


def leaks(blob: bytes | str, where: str) -> list[str]:
    """``where: value`` for each raw value found in ``blob`` (as UTF-8 and JSON-escaped)."""
    data = blob.encode("utf-8", "surrogatepass") if isinstance(blob, str) else blob
    found = []
    for value in RAW:
        forms = {value.encode(), json.dumps(value)[1:-1].encode(), value.encode("utf-16-le")}
        if any(form in data for form in forms):
            found.append(f"{where}: {value}")
    return found


def write_agents(folder: Path, model_url: str, memory: dict[str, Any]) -> None:
    write_agent(folder, "helper", model=primary(model_url), guardrails=REDACT, memory=memory)
    write_agent(folder, "strict", model=primary(model_url), guardrails=BLOCK, memory=memory)


@pytest.fixture
def graph() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


@pytest.fixture
def model() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@contextlib.asynccontextmanager
async def serve(runtime: AgentRuntime) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(runtime, ServerSettings(max_inflight_runs=50))
    await runtime.state()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver", timeout=60
    ) as http:
        try:
            yield application, http
        finally:
            await application.state.services.aclose()
            await runtime.close()


async def finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = (await client.get(f"/v1/runs/{run_id}")).json()
        if body["status"] not in {"running", "requires_action"}:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


async def drive_every_entry(
    app: FastAPI,
    client: httpx.AsyncClient,
    model: ScriptedOpenAIServer,
    graph: PlatformServer,
) -> list[dict[str, Any]]:
    """Every way in, each with the raw values; the finished runs (their API view)."""
    model.push(*(Reply(f"Noted ({i}).") for i in range(6)))
    body = {"query": QUERY, "session_id": "s-sync", "context": CONTEXT}
    runs: list[dict[str, Any]] = []

    sync = await client.post("/v1/agents/helper/run", json=body)
    assert sync.status_code == 200, sync.text
    runs.append(sync.json())

    accepted = await client.post(
        "/v1/agents/helper/run?mode=async", json=body | {"session_id": "s-async"}
    )
    assert accepted.status_code == 202, accepted.text
    runs.append(await finished(client, accepted.json()["run_id"]))

    streamed = await client.post("/v1/agents/helper/stream", json=body | {"session_id": "s-sse"})
    assert streamed.status_code == 200 and "event: done" in streamed.text
    runs.append(await finished(client, streamed.headers["x-run-id"]))

    payload, headers = signed(
        whatsapp_delivery(wa_text(QUERY, message_id="wamid.PII1", sender=SENDER))
    )
    delivered = await client.post("/v1/channels/whatsapp/webhook", content=payload, headers=headers)
    assert delivered.status_code == 200 and delivered.json()["accepted"] == 1
    await app.state.channel_hub.drain(timeout=30)
    assert graph.wait_for(1)[0].body["to"] == SENDER
    state = await app.state.services.runtime.state()
    [whatsapp_run] = [
        r
        for r in await state.runs.list_runs(agent="helper")
        if r.session_id not in {"s-sync", "s-async", "s-sse"}
    ]
    runs.append(await finished(client, whatsapp_run.id))

    # Blocked, synchronously and asynchronously: the run fails with the guardrail's message.
    blocked = await client.post("/v1/agents/strict/run", json=body | {"session_id": "s-block"})
    assert blocked.status_code == 200, blocked.text
    runs.append(blocked.json())
    later = await client.post(
        "/v1/agents/strict/run?mode=async", json=body | {"session_id": "s-block-async"}
    )
    assert later.status_code == 202, later.text
    runs.append(await finished(client, later.json()["run_id"]))
    return runs


def check_runs(runs: list[dict[str, Any]], model: ScriptedOpenAIServer) -> None:
    """The runs happened, redacted (or blocked), and the model never saw a raw value."""
    redacted, blocked = runs[:4], runs[4:]
    for run in redacted:
        assert run["status"] == "succeeded", run
    for run in blocked:
        assert run["status"] == "failed" and "blocked" in run["error"].lower(), run
    assert len(model.requests) == 4  # the blocked runs never reached the model
    problems = leaks(json.dumps(model.requests), "model request")
    problems += leaks(json.dumps(runs), "API answer")
    assert problems == []
    seen = json.dumps(model.requests)
    assert "[EMAIL]" in seen and "[PHONE]" in seen and "[CREDIT_CARD]" in seen


def check_logs(logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in logs.records)
    out, err = capfd.readouterr()
    assert logs.records, "the logs were not captured"
    assert leaks(records, "log") + leaks(out + err, "stdout/stderr") == []


async def test_nothing_raw_in_any_sqlite_file_or_log(
    tmp_path: Path,
    model: ScriptedOpenAIServer,
    graph: PlatformServer,
    logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    agents, state = tmp_path / "agents", tmp_path / "state"
    memory = {
        "conversational": {"backend": "sqlite", "strategy": "sliding_window", "max_turns": 20},
        "episodic": {"backend": "sqlite"},
        "semantic": {"backend": "sqlite", "similarity_threshold": 0.2},
    }
    write_agents(agents, model.url, memory)
    env = whatsapp_env(graph.url, WHATSAPP_DEFAULT_AGENT="helper") | {
        "ASTROMESH_STATE_BACKEND": "sqlite",
        "ASTROMESH_STATE_PATH": str(state / "state.db"),
    }
    async with serve(AgentRuntime(agents, env=env)) as (app, client):
        runs = await drive_every_entry(app, client, model, graph)
        # Read while the server's connections are open: a close would checkpoint the WAL.
        files = sorted(p for p in state.rglob("*") if p.is_file())
        names = {p.name for p in files}
        assert {"state.db", "state.db-wal", "state.db-shm", "semantic.db"} <= names, names
        assert (state / "state.db-wal").stat().st_size > 0  # the runs are (also) in the WAL
        problems = [leak for p in files for leak in leaks(p.read_bytes(), p.name)]
        everything = b"".join(p.read_bytes() for p in files)
        assert problems == []
        assert b"[CREDIT_CARD]" in everything and b"[EMAIL]" in everything
        semantic = b"".join(p.read_bytes() for p in files if p.name.startswith("semantic"))
        assert b"[CREDIT_CARD]" in semantic  # the remembered turns are there, redacted
    check_runs(runs, model)
    check_logs(logs, capfd)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


def redis_dump(url: str) -> list[tuple[str, bytes]]:
    """Every key of the Redis and its value, whatever its type."""
    client = redis.Redis.from_url(url)
    try:
        dumped: list[tuple[str, bytes]] = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                value = client.get(key) or b""
            elif kind == "hash":
                value = b"\n".join(k + b"=" + v for k, v in client.hgetall(key).items())
            elif kind == "list":
                value = b"\n".join(client.lrange(key, 0, -1))
            elif kind == "set":
                value = b"\n".join(client.smembers(key))
            elif kind == "zset":
                value = b"\n".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
            elif kind == "stream":
                value = repr(client.xrange(key)).encode()
            else:
                value = b""
            dumped.append((key.decode(), key + b"\n" + value))
        return dumped
    finally:
        client.close()


class RedisMonitor:
    """Every command the Redis receives while it runs (``MONITOR``, in a thread): what went
    through Redis at any moment, not only what it holds at the end (a run document is
    overwritten in place, so a raw first write would leave no trace in the final dump)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.commands: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> RedisMonitor:
        self._thread.start()
        assert self._ready.wait(10), "MONITOR did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        poke = redis.Redis.from_url(self.url)
        poke.ping()  # wakes the listener so it sees the stop flag
        poke.close()
        self._thread.join(10)

    def _listen(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                self.commands.append(str(event.get("command", "")))
                if self._stop.is_set():
                    break
        client.close()


def postgres_dump(dsn: str) -> list[tuple[str, str]]:
    """Every row of every table of the DSN's schema, as text."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
        dumped = []
        for (table,) in tables:
            rows = conn.execute(
                sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))
            ).fetchall()
            dumped.append((table, "\n".join(row for (row,) in rows)))
        return dumped


async def test_nothing_raw_in_redis_postgres_or_log(
    tmp_path: Path,
    own_redis: OwnRedis,
    postgres_schema: str,
    model: ScriptedOpenAIServer,
    graph: PlatformServer,
    logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    agents = tmp_path / "agents"
    memory = {
        "conversational": {"backend": "redis", "strategy": "sliding_window", "max_turns": 20},
        "episodic": {"backend": "postgres"},
        "semantic": {"backend": "pgvector", "similarity_threshold": 0.2},
    }
    write_agents(agents, model.url, memory)
    env = whatsapp_env(graph.url, WHATSAPP_DEFAULT_AGENT="helper") | {
        "ASTROMESH_STATE_BACKEND": "redis",
        "ASTROMESH_REDIS_URL": own_redis.url,
        "ASTROMESH_POSTGRES_DSN": postgres_schema,
        "ASTROMESH_STATE_PATH": str(tmp_path / "unused" / "state.db"),
    }
    with RedisMonitor(own_redis.url) as monitor:
        async with serve(AgentRuntime(agents, env=env)) as (app, client):
            runs = await drive_every_entry(app, client, model, graph)
            keys = redis_dump(own_redis.url)
            tables = postgres_dump(postgres_schema)
    assert keys and tables and len(monitor.commands) > 50
    problems = leaks("\n".join(monitor.commands), "a Redis command")
    problems += [leak for key, value in keys for leak in leaks(value, f"redis {key}")]
    problems += [leak for table, text in tables for leak in leaks(text, f"postgres {table}")]
    assert problems == []
    stored = b"".join(v for _, v in keys) + "".join(t for _, t in tables).encode()
    assert b"[CREDIT_CARD]" in stored and b"[EMAIL]" in stored
    filled = {t for t, text in tables if text}
    assert {"runs", "episodes"} <= filled, [t for t, _ in tables]
    assert any("[CREDIT_CARD]" in text for t, text in tables if "vector" in t or "semantic" in t), (
        filled
    )
    check_runs(runs, model)
    check_logs(logs, capfd)

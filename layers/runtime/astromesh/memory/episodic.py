"""Episodic memory: a durable log of what happened in each run, queryable by session and time.

An :class:`Episode` is a run reduced to what is worth remembering: the query, the steps, the
tool calls, the outcome and the cost. It is written once per run at ``finalize`` (writing
the same run again replaces it, so a retried finalize cannot duplicate it) and read back by
session, agent and time window, newest first.

Backends reuse the state backend's connection (SQLite worker thread, PostgreSQL pool). Their
table comes from the state store's numbered migrations (``stores/migrations/*/0004_memory.sql``),
which the backend applies before it runs any statement (SQLite on connect, PostgreSQL in
``open``, itself called by ``execute``), so the log never runs against an unmigrated database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from astromesh.errors import ConfigurationError
from astromesh.runs.state import RunState, utcnow
from astromesh.stores._common import as_utc, sortable_timestamp

if TYPE_CHECKING:
    from astromesh.stores.base import StateBackend
    from astromesh.stores.postgres import PostgresBackend
    from astromesh.stores.sqlite import SQLiteBackend

__all__ = [
    "Episode",
    "EpisodicLog",
    "InMemoryEpisodicLog",
    "PostgresEpisodicLog",
    "SQLiteEpisodicLog",
    "build_episodic_memory",
]


class Episode(BaseModel):
    """One run as the episodic log keeps it."""

    run_id: str
    agent: str
    namespace: str = "default"
    session_id: str
    query: str
    status: str
    answer: str | None = None
    error: str | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    started_at: datetime
    finished_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def from_run(cls, run: RunState) -> Episode:
        """The episode of a finished run (its steps, tool calls, outcome and usage)."""
        steps = [
            {"type": s.type, "iteration": s.iteration, "duration_ms": s.duration_ms, **s.data}
            for s in run.steps
        ]
        tool_calls = [
            {
                "name": s.data.get("name"),
                "arguments": s.data.get("arguments"),
                "ok": s.data.get("ok"),
                "duration_ms": s.duration_ms,
            }
            for s in run.steps
            if s.type == "tool_call"
        ]
        return cls(
            run_id=run.id,
            agent=run.agent,
            namespace=run.namespace,
            session_id=run.session_id,
            query=run.query,
            status=run.status.value,
            answer=run.answer,
            error=run.error,
            steps=steps,
            tool_calls=tool_calls,
            tokens_in=run.usage.tokens_in,
            tokens_out=run.usage.tokens_out,
            cost=run.usage.cost,
            started_at=run.created_at,
            finished_at=run.updated_at if run.status.is_terminal else utcnow(),
        )


class EpisodicLog(ABC):
    """Where episodes are written and queried."""

    @abstractmethod
    async def record(self, episode: Episode) -> None:
        """Store ``episode`` (replacing an earlier one of the same run)."""

    @abstractmethod
    async def get(self, run_id: str) -> Episode | None:
        """The episode of ``run_id``, if logged."""

    @abstractmethod
    async def query(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        namespace: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[Episode]:
        """Episodes matching every filter given, newest (by ``finished_at``) first;
        ``since`` is inclusive, ``until`` exclusive."""


class InMemoryEpisodicLog(EpisodicLog):
    """Episodes in a dict (tests, the ``memory`` backend)."""

    def __init__(self) -> None:
        self._episodes: dict[str, Episode] = {}

    async def record(self, episode: Episode) -> None:
        self._episodes[episode.run_id] = episode.model_copy(deep=True)

    async def get(self, run_id: str) -> Episode | None:
        return self._episodes.get(run_id)

    async def query(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        namespace: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[Episode]:
        found = [
            e
            for e in self._episodes.values()
            if (agent is None or e.agent == agent)
            and (session_id is None or e.session_id == session_id)
            and (namespace is None or e.namespace == namespace)
            and (since is None or as_utc(e.finished_at) >= as_utc(since))
            and (until is None or as_utc(e.finished_at) < as_utc(until))
        ]
        found.sort(key=lambda e: (as_utc(e.finished_at), e.run_id), reverse=True)
        return found[: max(limit, 0)]


def _filters(
    agent: str | None,
    session_id: str | None,
    namespace: str | None,
    since: Any,
    until: Any,
    mark: str,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("agent", agent, "="),
        ("session_id", session_id, "="),
        ("namespace", namespace, "="),
        ("finished_at", since, ">="),
        ("finished_at", until, "<"),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {mark}")
            params.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


class SQLiteEpisodicLog(EpisodicLog):
    """Episodes in the state database's SQLite file (table ``episodes``)."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def _call(self, fn: Any) -> Any:
        return await self._backend.call(fn)

    async def record(self, episode: Episode) -> None:
        row = (
            episode.run_id,
            episode.agent,
            episode.namespace,
            episode.session_id,
            episode.status,
            sortable_timestamp(episode.started_at),
            sortable_timestamp(episode.finished_at),
            episode.tokens_in,
            episode.tokens_out,
            episode.cost,
            episode.model_dump_json(),
        )
        await self._call(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO episodes (run_id, agent, namespace, session_id, status,"
                " started_at, finished_at, tokens_in, tokens_out, cost, document)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def get(self, run_id: str) -> Episode | None:
        row = await self._call(
            lambda conn: conn.execute(
                "SELECT document FROM episodes WHERE run_id = ?", (run_id,)
            ).fetchone()
        )
        return None if row is None else Episode.model_validate_json(row[0])

    async def query(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        namespace: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[Episode]:
        where, params = _filters(
            agent,
            session_id,
            namespace,
            sortable_timestamp(since) if since else None,
            sortable_timestamp(until) if until else None,
            "?",
        )
        rows = await self._call(
            lambda conn: conn.execute(
                f"SELECT document FROM episodes {where}"
                " ORDER BY finished_at DESC, run_id DESC LIMIT ?",
                (*params, max(limit, 0)),
            ).fetchall()
        )
        return [Episode.model_validate_json(doc) for (doc,) in rows]


class PostgresEpisodicLog(EpisodicLog):
    """Episodes in the state database's PostgreSQL (table ``episodes``, JSONB document)."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def record(self, episode: Episode) -> None:
        await self._backend.execute(
            "INSERT INTO episodes (run_id, agent, namespace, session_id, status, started_at,"
            " finished_at, tokens_in, tokens_out, cost, document)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
            " ON CONFLICT (run_id) DO UPDATE SET agent = excluded.agent,"
            " namespace = excluded.namespace, session_id = excluded.session_id,"
            " status = excluded.status, started_at = excluded.started_at,"
            " finished_at = excluded.finished_at, tokens_in = excluded.tokens_in,"
            " tokens_out = excluded.tokens_out, cost = excluded.cost,"
            " document = excluded.document",
            (
                episode.run_id,
                episode.agent,
                episode.namespace,
                episode.session_id,
                episode.status,
                as_utc(episode.started_at),
                as_utc(episode.finished_at),
                episode.tokens_in,
                episode.tokens_out,
                episode.cost,
                episode.model_dump_json(),
            ),
        )

    async def get(self, run_id: str) -> Episode | None:
        rows = await self._backend.execute(
            "SELECT document::text FROM episodes WHERE run_id = %s", (run_id,)
        )
        return Episode.model_validate_json(rows[0][0]) if rows else None

    async def query(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        namespace: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[Episode]:
        where, params = _filters(
            agent,
            session_id,
            namespace,
            as_utc(since) if since else None,
            as_utc(until) if until else None,
            "%s",
        )
        rows = await self._backend.execute(
            f"SELECT document::text FROM episodes {where}"
            " ORDER BY finished_at DESC, run_id DESC LIMIT %s",
            (*params, max(limit, 0)),
        )
        return [Episode.model_validate_json(doc) for (doc,) in rows]


def build_episodic_memory(backend: StateBackend) -> EpisodicLog:
    """The episodic log stored beside ``backend``'s runs (SQLite, PostgreSQL or memory).

    Raises:
        ConfigurationError: a backend without durable SQL storage (Redis is the hot tier;
            give episodic memory ``backend: postgres`` or ``sqlite``).
    """
    from astromesh.stores.memory import MemoryBackend

    if isinstance(backend, MemoryBackend):
        return InMemoryEpisodicLog()
    from astromesh.stores.sqlite import SQLiteBackend

    if isinstance(backend, SQLiteBackend):
        return SQLiteEpisodicLog(backend)
    try:
        from astromesh.stores.postgres import PostgresBackend
    except ImportError:  # pragma: no cover - the postgres extra is missing
        PostgresBackend = None  # type: ignore[assignment,misc]
    if PostgresBackend is not None and isinstance(backend, PostgresBackend):
        return PostgresEpisodicLog(backend)
    raise ConfigurationError(
        f"episodic memory needs a sqlite, postgres or memory backend, not {type(backend).__name__}"
    )

"""PostgreSQL stores: the durable tier (RDS in AWS), through psycopg 3's async pool.

The pool opens on first use (or :meth:`PostgresBackend.open`) and the schema migrations run
right then, so a fresh database becomes usable without a separate migrate step, and a
database written by a newer Astromesh is refused before anything reads it. Connections are
opened by :class:`~astromesh.stores.postgres_connect.PostgresConnector` (IAM auth tokens behind
RDS Proxy, CA certificates for ``sslmode=verify-full``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool

from astromesh.errors import ConflictError, NotFoundError
from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState
from astromesh.stores._common import (
    adopt,
    as_utc,
    conflict,
    created_copy,
    saved_copy,
)
from astromesh.stores._journal import (
    Encoded,
    decode,
    encode,
    parse_messages,
    pending_write,
    remember,
)
from astromesh.stores._usage_sql import (
    ENTRY_COLUMNS,
    POSTGRES,
    summary_of,
    summary_queries,
    where_clause,
)
from astromesh.stores.base import (
    HistoryStore,
    PendingCheckpoint,
    RunStore,
    SessionKey,
    StateBackend,
    UsageStore,
)
from astromesh.stores.faults import translate_faults, translated
from astromesh.stores.migrations import migrate_postgres
from astromesh.stores.postgres_connect import PostgresConnector
from astromesh.telemetry.usage import Grouping, UsageEntry, UsageGroup, UsageQuery, entries_of

if TYPE_CHECKING:
    from psycopg import AsyncConnection, AsyncCursor
    from psycopg.abc import Query

__all__ = ["PostgresBackend", "PostgresHistoryStore", "PostgresRunStore", "PostgresUsageStore"]

logger = logging.getLogger(__name__)


@translate_faults("postgresql")
class PostgresBackend(StateBackend):
    """Runs and history in PostgreSQL tables (``runs``, ``messages``), JSONB documents.

    Args:
        dsn: a libpq connection string or ``postgresql://`` URI.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens under load.
        connector: how connections are opened; by default from ``dsn`` and the
            ``ASTROMESH_POSTGRES_*`` settings of the environment.

    Raises:
        ConfigurationError: those settings are invalid (see ``postgres_connect``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connector: PostgresConnector | None = None,
    ) -> None:
        self.dsn = dsn
        self.connector = connector or PostgresConnector.from_env(dsn)
        self.min_size = min_size
        self.max_size = max_size
        self.pool: AsyncConnectionPool[AsyncConnection[Any]] = self._make_pool()
        self._opened = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        self.runs = PostgresRunStore(self)
        self.history = PostgresHistoryStore(self)
        self.usage = PostgresUsageStore(self)

    def _make_pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        # open=False: psycopg would otherwise open it in the constructor, which needs a
        # running event loop and a reachable server before anything has asked for one.
        return self.connector.pool(
            min_size=self.min_size, max_size=self.max_size, open=False, name="astromesh"
        )

    async def open(self) -> None:
        """Open the pool and migrate the schema; later calls do nothing.

        Raises:
            SchemaVersionError: the database was migrated by a newer Astromesh.
            RuntimeError: the backend was closed.
        """
        if self._opened:
            return
        async with self._open_lock:
            if self._closed:
                raise RuntimeError("PostgresBackend is closed")
            if self._opened:
                return
            try:
                await self.pool.open(wait=True, timeout=self.connector.timeout)
                async with self.pool.connection() as conn:
                    applied = await migrate_postgres(conn)
            except BaseException:
                await self.pool.close()
                # A closed psycopg pool cannot be reopened: the next attempt gets a new one.
                self.pool = self._make_pool()
                raise
            if applied:
                logger.info("applied postgres migrations %s", applied)
            self._opened = True

    async def execute(self, query: Query, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; return its rows (empty when it has none)."""
        rows, _ = await self.execute_count(query, params)
        return rows

    async def execute_count(
        self, query: Query, params: tuple[Any, ...] = ()
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Like :meth:`execute`, also returning the affected row count."""
        await self.open()
        async with self.pool.connection() as conn, conn.cursor() as cursor:
            await cursor.execute(query, params)
            rows = await cursor.fetchall() if cursor.description is not None else []
            return rows, cursor.rowcount

    async def close(self) -> None:
        """Close the pool; its connections are returned to the server. Later calls raise."""
        self._closed = True
        self._opened = False
        await self.pool.close()


async def _replace_usage(cursor: AsyncCursor[Any], run: RunState) -> None:
    """Replace ``run``'s usage lines, inside the caller's transaction."""
    await cursor.execute("DELETE FROM usage_lines WHERE run_id = %s", (run.id,))
    await cursor.executemany(
        "INSERT INTO usage_lines (run_id, line, tenant, agent, namespace, status,"
        " started_at, parent_run_id, provider, model, role, calls, tokens_in,"
        " tokens_out, cost)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                e.run_id,
                line,
                e.tenant,
                e.agent,
                e.namespace,
                e.status,
                e.started_at,
                e.parent_run_id,
                e.provider,
                e.model,
                e.role,
                e.calls,
                e.tokens_in,
                e.tokens_out,
                e.cost,
            )
            for line, e in enumerate(entries_of(run))
        ],
    )


_COLUMNS = "agent, session_id, namespace, status, version, created_at, updated_at, document"


def _values(run: RunState, encoded: Encoded) -> tuple[Any, ...]:
    """The ``runs`` columns after ``id``, in :data:`_COLUMNS` order (the document is the
    run's head: its growing lists are rows of ``run_items``)."""
    return (
        run.agent,
        run.session_id,
        run.namespace,
        run.status.value,
        run.version,
        as_utc(run.created_at),
        as_utc(run.updated_at),
        encoded.head,
    )


async def _write_items(cursor: AsyncCursor[Any], encoded: Encoded) -> None:
    """Delete the rewritten lists' rows and insert the new elements, in the caller's
    transaction (after its compare-and-swap won)."""
    rewritten = encoded.rewritten()
    if rewritten:
        await cursor.execute(_DELETE_ITEMS, (encoded.run_id, rewritten))
    rows = encoded.rows()
    if rows:
        await cursor.executemany(_INSERT_ITEM, rows)


_SELECT_RUN = (
    "SELECT r.document::text,"
    " ARRAY(SELECT i.list FROM run_items i WHERE i.run_id = r.id ORDER BY i.list, i.seq),"
    " ARRAY(SELECT i.body FROM run_items i WHERE i.run_id = r.id ORDER BY i.list, i.seq)"
    " FROM runs r"
)
"""A run's head and its rows in one statement, so one snapshot of the database."""
_INSERT_ITEM = "INSERT INTO run_items (run_id, list, seq, body) VALUES (%s, %s, %s, %s)"
_DELETE_ITEMS = "DELETE FROM run_items WHERE run_id = %s AND list = ANY(%s)"


_UPDATE_RUN = (
    "UPDATE runs SET agent = %s, session_id = %s, namespace = %s, status = %s, version = %s,"
    " created_at = %s, updated_at = %s, document = %s::jsonb WHERE id = %s AND version = %s"
)
_UPSERT_RESULT = (
    "INSERT INTO action_results (run_id, call_id, document) VALUES (%s, %s, %s::jsonb)"
    " ON CONFLICT (run_id, call_id) DO UPDATE SET document = excluded.document"
)
"""The step loop's statements, constant text so psycopg prepares them server-side after a
few uses on a connection and reuses the plan (``prepare_threshold``, off behind RDS Proxy:
see :mod:`astromesh.stores.postgres_connect`)."""


@translate_faults("postgresql")
class PostgresRunStore(RunStore):
    """Run documents in ``runs``; CAS via ``UPDATE ... WHERE id = %s AND version = %s``."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def create(self, run: RunState) -> RunState:
        written = created_copy(run)
        encoded = encode(written, self, replacing=None)
        await self._backend.open()
        async with (
            self._backend.pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            await cursor.execute(
                f"INSERT INTO runs (id, {_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (id) DO NOTHING",
                (run.id, *_values(written, encoded)),
            )
            if cursor.rowcount != 1:
                raise ConflictError(f"run {run.id!r} already exists")
            await _write_items(cursor, encoded)
            if written.status.is_terminal:
                await _replace_usage(cursor, written)
        remember(run, encoded.snapshot)
        return adopt(run, written)

    async def get(self, run_id: str) -> RunState:
        rows = await self._backend.execute(f"{_SELECT_RUN} WHERE r.id = %s", (run_id,))
        if not rows:
            raise NotFoundError(f"run {run_id!r} not found")
        head, lists, bodies = rows[0]
        return decode(head, zip(lists, bodies, strict=True), store=self)

    async def save(self, run: RunState) -> RunState:
        return await self.checkpoint(run)

    async def checkpoint(self, run: RunState, results: Sequence[ActionResult] = ()) -> RunState:
        """The step's results, the run's compare-and-swap and (once it ended) its usage lines
        in one transaction on one connection; a lost swap rolls the results back with it."""
        written = saved_copy(run)
        encoded = encode(written, self, replacing=run.version)
        values = _values(written, encoded)
        await self._swap(run.id, run.version, values, encoded, _documents(run.id, results), written)
        remember(run, encoded.snapshot)
        return adopt(run, written)

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        """:meth:`checkpoint` with its transaction in a task of its own, started once
        everything it writes is encoded (here, before returning).

        A run that ended is written whole before this returns: its usage lines are read
        from it in the transaction, and the step loop waits for its final save anyway.
        """
        if run.status.is_terminal:
            return await super().begin_checkpoint(run, results)
        written = saved_copy(run)
        encoded = encode(written, self, replacing=run.version)
        values = _values(written, encoded)
        swap = self._swap(run.id, run.version, values, encoded, _documents(run.id, results), None)
        write = asyncio.ensure_future(translated("postgresql", swap))

        return pending_write(run, written, encoded, write)

    async def _swap(
        self,
        run_id: str,
        version: int,
        values: tuple[Any, ...],
        encoded: Encoded,
        documents: list[tuple[str, str, str]],
        ended: RunState | None,
    ) -> None:
        """The transaction of a checkpoint, from encoded values only (so it can run while
        the run changes), and the usage lines of ``ended``, a run stored ended."""
        await self._backend.open()
        async with (
            self._backend.pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            if documents:
                await cursor.executemany(_UPSERT_RESULT, documents)
            await cursor.execute(_UPDATE_RUN, (*values, run_id, version))
            if cursor.rowcount != 1:
                await cursor.execute("SELECT version FROM runs WHERE id = %s", (run_id,))
                row = await cursor.fetchone()
                if row is None:
                    raise NotFoundError(f"run {run_id!r} not found")
                raise conflict(run_id, row[0], version)
            await _write_items(cursor, encoded)
            if ended is not None and ended.status.is_terminal:
                await _replace_usage(cursor, ended)

    async def list_runs(
        self, *, agent: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[RunState]:
        if limit <= 0:
            return []
        clauses: list[str] = []
        params: list[Any] = []
        if agent is not None:
            clauses.append("agent = %s")
            params.append(agent)
        if session_id is not None:
            clauses.append("session_id = %s")
            params.append(session_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._backend.execute(
            f"{_SELECT_RUN} {where} ORDER BY r.created_at DESC, r.id DESC LIMIT %s",
            (*params, limit),
        )
        return [decode(head, zip(lists, bodies, strict=True)) for head, lists, bodies in rows]

    async def put_result(self, run_id: str, result: ActionResult) -> None:
        await self._backend.execute_count(
            _UPSERT_RESULT, (run_id, result.call_id, result.model_dump_json())
        )

    async def get_results(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        wanted = list(dict.fromkeys(call_ids))
        if not wanted:
            return {}
        rows = await self._backend.execute(
            "SELECT call_id, document::text FROM action_results"
            " WHERE run_id = %s AND call_id = ANY(%s)",
            (run_id, wanted),
        )
        return {call_id: ActionResult.model_validate_json(doc) for call_id, doc in rows}


@translate_faults("postgresql")
class PostgresUsageStore(UsageStore):
    """The ``usage_lines`` table (written by :class:`PostgresRunStore`)."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def entries(self, query: UsageQuery) -> list[UsageEntry]:
        where, params = where_clause(POSTGRES, query, query.since, query.until)
        rows = await self._backend.execute(
            f"SELECT {ENTRY_COLUMNS} FROM usage_lines WHERE {where}", tuple(params)
        )
        return [UsageEntry(*row[:5], as_utc(row[5]), *row[6:]) for row in rows]

    async def summary(
        self, query: UsageQuery, group_by: Grouping | None
    ) -> tuple[UsageGroup, list[UsageGroup]]:
        statements = summary_queries(POSTGRES, query, group_by, query.since, query.until)
        rows = [await self._backend.execute(sql, tuple(params)) for sql, params in statements]
        return summary_of(group_by, rows)


@translate_faults("postgresql")
class PostgresHistoryStore(HistoryStore):
    """Messages in ``messages``, ordered by their identity column."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def append(self, key: SessionKey, messages: list[Message]) -> None:
        if not messages:
            return
        skey = key.as_string()
        await self._backend.open()
        # One transaction (the pool commits when the block ends): readers see the whole turn.
        async with self._backend.pool.connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO messages (session_key, role, content) VALUES (%s, %s, %s::jsonb)",
                [(skey, m.role.value, m.model_dump_json()) for m in messages],
            )

    async def read(self, key: SessionKey, limit: int | None = None) -> list[Message]:
        skey = key.as_string()
        if limit is None:
            rows = await self._backend.execute(
                "SELECT content::text FROM messages WHERE session_key = %s ORDER BY id", (skey,)
            )
        elif limit <= 0:
            return []
        else:
            rows = await self._backend.execute(
                "SELECT content::text FROM (SELECT id, content FROM messages"
                " WHERE session_key = %s ORDER BY id DESC LIMIT %s) AS last ORDER BY id",
                (skey, limit),
            )
        return parse_messages([content for (content,) in rows])

    async def clear(self, key: SessionKey) -> int:
        _, count = await self._backend.execute_count(
            "DELETE FROM messages WHERE session_key = %s", (key.as_string(),)
        )
        return count


def _documents(run_id: str, results: Sequence[ActionResult]) -> list[tuple[str, str, str]]:
    """The ``action_results`` rows of a checkpoint's results."""
    return [(run_id, r.call_id, r.model_dump_json()) for r in results]

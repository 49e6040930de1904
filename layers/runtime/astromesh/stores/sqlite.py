"""SQLite stores: the embedded default, one file next to the project and nothing to run.

The stdlib ``sqlite3`` module blocks, so every call goes to one dedicated worker thread that
owns the connection: the event loop never waits on disk, and because that single thread runs
the calls one at a time the connection needs no further locking. WAL mode lets other
processes (the CLI, a second ``astromesh dev``) read while this one writes; ``busy_timeout``
makes writers from several processes queue instead of failing at once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from astromesh.errors import ConflictError, NotFoundError
from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState, utcnow
from astromesh.stores._common import (
    adopt,
    conflict,
    created_copy,
    saved_copy,
    sortable_timestamp,
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
    SQLITE,
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
from astromesh.stores.migrations import migrate_sqlite
from astromesh.telemetry.usage import Grouping, UsageEntry, UsageGroup, UsageQuery, entries_of

__all__ = [
    "SQLiteBackend",
    "SQLiteHistoryStore",
    "SQLiteRunStore",
    "SQLiteUsageStore",
    "apply_erasure_pragmas",
    "checkpoint_truncate",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BUSY_TIMEOUT_MS = 5000


class SQLiteBackend(StateBackend):
    """Runs and history in one SQLite database file (or ``":memory:"``).

    The connection is opened, and the schema migrated, on first use (or by :meth:`open`), so
    constructing a backend is free and never touches the disk from the event loop.
    """

    def __init__(self, path: str | Path) -> None:
        self.path: str | Path = path if str(path) == ":memory:" else Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astromesh-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self.runs = SQLiteRunStore(self)
        self.history = SQLiteHistoryStore(self)
        self.usage = SQLiteUsageStore(self)

    async def open(self) -> None:
        """Open the database and apply pending migrations now rather than on first use."""
        await self.call(lambda _conn: None)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread and return its result."""
        return await self.submit(fn)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn(connection)`` on the worker thread now; the future is its result (the
        caller must await it, or its failure is reported as never retrieved)."""
        if self._closed:
            raise RuntimeError("SQLiteBackend is closed")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._in_worker, fn)

    def _in_worker(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn)

    def _connect(self) -> sqlite3.Connection:
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so transactions are exactly the BEGIN/COMMIT
        # written below and not the sqlite3 module's implicit ones.
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash can
            # lose the last commits, an acceptable trade for a local development store.
            conn.execute("PRAGMA synchronous = NORMAL")
            apply_erasure_pragmas(conn)
            applied = migrate_sqlite(conn)
        except BaseException:
            conn.close()
            raise
        if applied:
            logger.info("path=<%s> | applied sqlite migrations %s", self.path, applied)
        return conn

    async def close(self) -> None:
        """Close the connection and stop the worker thread; later calls raise."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_in_worker)
        self._executor.shutdown(wait=False)

    def _close_in_worker(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def apply_erasure_pragmas(conn: sqlite3.Connection) -> None:
    """Make deleted and overwritten values leave the files, not only the tables.

    - ``secure_delete``: SQLite zeroes the space a deleted or updated row (a cleared
      history, a run document saved again) leaves in its page, instead of keeping it as free
      space that still holds the old text;
    - ``journal_size_limit = 0``: when the WAL restarts after a checkpoint it is truncated,
      so frames of old page versions do not linger at its end.

    A deletion of personal data then checkpoints at once (:func:`checkpoint_truncate`), so
    the old page versions leave the WAL too; ``bench/sqlite_residue.py`` measures what stays.
    """
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA journal_size_limit = 0")


def checkpoint_truncate(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and truncate it to zero bytes; ``False`` when a reader
    of another connection kept part of it (the next checkpoint takes the rest)."""
    busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        logger.debug("wal checkpoint blocked by a reader; the rest goes at the next one")
    return not busy


class SQLiteRunStore(RunStore):
    """Run documents in the ``runs`` table; CAS via ``UPDATE ... WHERE version = ?``."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def create(self, run: RunState) -> RunState:
        written = created_copy(run)
        encoded = encode(written, self, replacing=None)
        values = _row(written, encoded)
        rows = _item_rows(written, encoded)
        usage = _usage_rows(written)  # a finished run's copy: its usage goes in with it

        def insert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                try:
                    conn.execute(
                        "INSERT INTO runs (id, agent, session_id, namespace, status, version,"
                        " created_at, updated_at, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        values,
                    )
                except sqlite3.IntegrityError:
                    raise ConflictError(f"run {run.id!r} already exists") from None
                conn.executemany(_INSERT_ITEM, rows)
                _replace_usage(conn, run.id, usage)

        await self._backend.call(insert)
        remember(run, encoded.snapshot)
        return adopt(run, written)

    async def get(self, run_id: str) -> RunState:
        def select(conn: sqlite3.Connection) -> RunState:
            with _transaction(conn, immediate=False):  # the head and its rows as one version
                row = conn.execute("SELECT document FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"run {run_id!r} not found")
                items = conn.execute(_SELECT_ITEMS, (run_id,)).fetchall()
            return decode(row[0], items, store=self)

        return await self._backend.call(select)

    async def save(self, run: RunState) -> RunState:
        return await self.checkpoint(run)

    async def checkpoint(self, run: RunState, results: Sequence[ActionResult] = ()) -> RunState:
        return await (await self.begin_checkpoint(run, results)).wait()

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        """The run, its step's results and (once it ended) its usage lines in one worker call
        and one transaction, submitted to the worker before this returns.

        One hop to the worker thread and one commit per iteration instead of one per write;
        a lost compare-and-swap rolls the results back with it. Everything the transaction
        writes is encoded here, on the event loop, so the caller may change ``run`` at once.
        """
        written = saved_copy(run)
        encoded = encode(written, self, replacing=run.version)
        changed = (
            written.status.value,
            written.version,
            sortable_timestamp(written.updated_at),
            encoded.head,
        )
        rewritten = [(run.id, name) for name in encoded.rewritten()]
        rows = _item_rows(written, encoded)
        documents = [(run.id, r.call_id, r.model_dump_json()) for r in results]
        usage = _usage_rows(written)

        def update(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                if documents:
                    conn.executemany(_UPSERT_RESULT, documents)
                cursor = conn.execute(_UPDATE_RUN, (*changed, run.id, run.version))
                if cursor.rowcount == 1:
                    if rewritten:
                        conn.executemany(_DELETE_ITEMS, rewritten)
                    conn.executemany(_INSERT_ITEM, rows)
                    _replace_usage(conn, run.id, usage)
                    return
                row = conn.execute("SELECT version FROM runs WHERE id = ?", (run.id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"run {run.id!r} not found")
                raise conflict(run.id, row[0], run.version)

        return pending_write(run, written, encoded, self._backend.submit(update))

    async def list_runs(
        self, *, agent: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[RunState]:
        if limit <= 0:
            return []
        clauses: list[str] = []
        params: list[str | int] = []
        if agent is not None:
            clauses.append("agent = ?")
            params.append(agent)
        if session_id is not None:
            clauses.append("session_id = ?")
            params.append(session_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT id, document FROM runs {where} ORDER BY created_at DESC, id DESC LIMIT ?"

        def select(conn: sqlite3.Connection) -> list[RunState]:
            with _transaction(conn, immediate=False):
                rows = conn.execute(query, (*params, limit)).fetchall()
                return [
                    decode(doc, conn.execute(_SELECT_ITEMS, (run_id,)).fetchall())
                    for run_id, doc in rows
                ]

        return await self._backend.call(select)

    async def put_result(self, run_id: str, result: ActionResult) -> None:
        document = result.model_dump_json()

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT_RESULT, (run_id, result.call_id, document))

        await self._backend.call(upsert)

    async def get_results(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        wanted = list(dict.fromkeys(call_ids))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)

        def select(conn: sqlite3.Connection) -> dict[str, ActionResult]:
            rows = conn.execute(
                "SELECT call_id, document FROM action_results"
                f" WHERE run_id = ? AND call_id IN ({marks})",
                (run_id, *wanted),
            ).fetchall()
            return {call_id: ActionResult.model_validate_json(doc) for call_id, doc in rows}

        return await self._backend.call(select)


class SQLiteHistoryStore(HistoryStore):
    """Messages in the ``messages`` table, ordered by their autoincrement id."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def append(self, key: SessionKey, messages: list[Message]) -> None:
        if not messages:
            return
        skey = key.as_string()
        now = sortable_timestamp(utcnow())
        rows = [(skey, m.role.value, m.model_dump_json(), now) for m in messages]

        def insert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):  # a reader never sees half of a turn's messages
                conn.executemany(
                    "INSERT INTO messages (session_key, role, content, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    rows,
                )

        await self._backend.call(insert)

    async def read(self, key: SessionKey, limit: int | None = None) -> list[Message]:
        skey = key.as_string()
        if limit is not None and limit <= 0:
            return []

        def select(conn: sqlite3.Connection) -> list[Message]:
            if limit is None:
                rows = conn.execute(
                    "SELECT content FROM messages WHERE session_key = ? ORDER BY id", (skey,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT content FROM (SELECT id, content FROM messages"
                    " WHERE session_key = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                    (skey, limit),
                ).fetchall()
            return parse_messages([content for (content,) in rows])

        return await self._backend.call(select)

    async def clear(self, key: SessionKey) -> int:
        skey = key.as_string()

        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute("DELETE FROM messages WHERE session_key = ?", (skey,))
            if cursor.rowcount:  # the old pages leave the WAL now, not at some later point
                checkpoint_truncate(conn)
            return cursor.rowcount

        return await self._backend.call(delete)


class SQLiteUsageStore(UsageStore):
    """The ``usage_lines`` table (written by :class:`SQLiteRunStore`)."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def entries(self, query: UsageQuery) -> list[UsageEntry]:
        where, params = _usage_where(query)
        sql = f"SELECT {ENTRY_COLUMNS} FROM usage_lines WHERE {where}"

        def select(conn: sqlite3.Connection) -> list[UsageEntry]:
            return [
                UsageEntry(
                    *row[:5],
                    datetime.strptime(row[5], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                    *row[6:],
                )
                for row in conn.execute(sql, params).fetchall()
            ]

        return await self._backend.call(select)

    async def summary(
        self, query: UsageQuery, group_by: Grouping | None
    ) -> tuple[UsageGroup, list[UsageGroup]]:
        statements = summary_queries(
            SQLITE,
            query,
            group_by,
            sortable_timestamp(query.since),
            sortable_timestamp(query.until),
        )

        def select(conn: sqlite3.Connection) -> list[list[tuple[object, ...]]]:
            return [conn.execute(sql, params).fetchall() for sql, params in statements]

        return summary_of(group_by, await self._backend.call(select))


def _usage_where(query: UsageQuery) -> tuple[str, list[object]]:
    return where_clause(
        SQLITE, query, sortable_timestamp(query.since), sortable_timestamp(query.until)
    )


def _usage_rows(run: RunState) -> list[tuple[object, ...]] | None:
    """The ``usage_lines`` rows of ``run`` once it ended; ``None`` while it runs (its lines
    are written when it is stored ended)."""
    if not run.status.is_terminal:
        return None
    return [
        (
            e.run_id,
            line,
            e.tenant,
            e.agent,
            e.namespace,
            e.status,
            sortable_timestamp(e.started_at),
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
    ]


def _replace_usage(
    conn: sqlite3.Connection, run_id: str, rows: list[tuple[object, ...]] | None
) -> None:
    """Replace ``run_id``'s usage lines with ``rows``, inside the caller's transaction."""
    if rows is None:
        return
    conn.execute("DELETE FROM usage_lines WHERE run_id = ?", (run_id,))
    conn.executemany(
        "INSERT INTO usage_lines (run_id, line, tenant, agent, namespace, status,"
        " started_at, parent_run_id, provider, model, role, calls, tokens_in,"
        " tokens_out, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


_UPDATE_RUN = (
    "UPDATE runs SET status = ?, version = ?, updated_at = ?, document = ?"
    " WHERE id = ? AND version = ?"
)
"""A save sets only what a run's life changes: its agent, session, namespace and creation
time are fixed when it is created, and SQLite rewrites an index whenever an UPDATE names one
of its columns, so naming them cost three index pages per save for nothing."""
_UPSERT_RESULT = (
    "INSERT INTO action_results (run_id, call_id, document) VALUES (?, ?, ?)"
    " ON CONFLICT (run_id, call_id) DO UPDATE SET document = excluded.document"
)
_INSERT_ITEM = "INSERT INTO run_items (run_id, list, seq, body, version) VALUES (?, ?, ?, ?, ?)"
_DELETE_ITEMS = "DELETE FROM run_items WHERE run_id = ? AND list = ?"
_SELECT_ITEMS = "SELECT list, body FROM run_items WHERE run_id = ? ORDER BY list, seq"
"""Statements kept as module constants: the ``sqlite3`` module caches each prepared statement
by its text (``cached_statements``), so the step loop's writes are prepared once per
connection."""


@contextmanager
def _transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception (the connection is in
    autocommit mode, so this is the only transaction there is). ``immediate=False`` begins a
    read transaction: several reads then see one version of the database."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _item_rows(written: RunState, encoded: Encoded) -> list[tuple[str, str, int, str, int]]:
    """The ``run_items`` rows of one save: :meth:`Encoded.rows` keyed by the save's version
    too, so they are neighbours in the table's B-tree (migration 0009)."""
    return [(*row, written.version) for row in encoded.rows()]


def _row(run: RunState, encoded: Encoded) -> tuple[str, str, str, str, str, int, str, str, str]:
    """The ``runs`` columns of ``run``, in table order (the document is its head)."""
    return (
        run.id,
        run.agent,
        run.session_id,
        run.namespace,
        run.status.value,
        run.version,
        sortable_timestamp(run.created_at),
        sortable_timestamp(run.updated_at),
        encoded.head,
    )

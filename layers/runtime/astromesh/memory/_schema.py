"""The memory tables (episodes, conversation summaries), created by the stores on first use.

They are applied here, idempotently, rather than through the numbered state migrations:
the migration runner insists on versions 1..N without gaps, and the numbers after 0002 are
being claimed by parallel work, so a numbered file could not be added without breaking every
SQL backend until the gap closed. Every statement is ``IF NOT EXISTS``, so the same SQL can
later also ship as a numbered migration without conflict.
"""

from __future__ import annotations

import asyncio
import sqlite3
from functools import cache
from importlib import resources
from typing import Literal

from astromesh.stores.migrations import _sqlite_statements

_LOCK_KEY = "astromesh:memory-schema"


@cache
def schema_sql(dialect: Literal["sqlite", "postgres"]) -> str:
    """The SQL script of ``dialect`` shipped in ``memory/schema``."""
    return resources.files(__package__).joinpath("schema", f"{dialect}.sql").read_text("utf-8")


def ensure_sqlite(conn: sqlite3.Connection) -> None:
    """Create the memory tables in a SQLite connection (autocommit mode) if missing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _sqlite_statements(schema_sql("sqlite")):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class PostgresSchema:
    """Creates the memory tables once per backend, serialised by an advisory lock."""

    def __init__(self) -> None:
        self._done = False
        self._lock = asyncio.Lock()

    async def ensure(self, backend: object) -> None:
        from astromesh.stores.postgres import PostgresBackend

        assert isinstance(backend, PostgresBackend)
        if self._done:
            return
        async with self._lock:
            if self._done:
                return
            await backend.open()
            async with backend.pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK_KEY,))
                await conn.execute(schema_sql("postgres").encode())
            self._done = True

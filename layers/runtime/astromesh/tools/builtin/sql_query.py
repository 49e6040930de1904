"""``sql_query``: one read-only SQL statement on a database the operator allowed (upstream's).

Arguments as upstream's: ``query`` and ``params`` (positional values for ``%s`` in
PostgreSQL, ``?`` in SQLite). ``config.connection_string`` (upstream's name; ``dsn`` also)
is a PostgreSQL DSN (URL or ``key=value``) or upstream's ``sqlite:///path``. A registered
agent may only name a DSN the policy lists (``sql_dsns``): the server's state database is
never reachable unless the operator lists it.

Read-only is enforced by the database, never by reading the SQL (a regular expression
cannot tell a write from a read: CTEs, functions, comments):

- PostgreSQL: each call opens a connection, begins a ``READ ONLY`` transaction with a
  ``statement_timeout``, streams the statement's rows over the extended protocol (so it is
  exactly one statement: ``SELECT 1; COMMIT; DROP ...`` is refused by the server), stops
  after ``max_rows`` (the rest is never sent to us), rolls back and closes. Writes fail
  with the server's own "cannot execute ... in a read-only transaction".
- A read-only transaction does not stop a privileged role: a superuser (or a member of
  ``pg_execute_server_program``, ``pg_read_server_files`` or ``pg_write_server_files``) can
  run ``COPY (SELECT 1) TO PROGRAM '...'`` (a shell command on the database host) or read
  any server file with ``pg_read_file``, inside ``READ ONLY``. The SQL is the model's, so a
  prompt injection could write it: every call first asks the server what the connected role
  may do and refuses a privileged one, naming why. Give ``sql_query`` a role that can only
  ``SELECT``.
- SQLite: the file is opened ``mode=ro`` with ``query_only`` on, an authorizer that refuses
  ``ATTACH`` (which would create and write another file) and ``PRAGMA``, one statement per
  call, and a progress handler that interrupts it at the time limit.

``read_only: false`` is refused: this builtin never writes. Values are bounded (each cell's
text at :data:`MAX_CELL_CHARS`) so a huge column cannot flood the model's context.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig

MAX_CELL_CHARS = 2_000
SQLITE_PREFIX = "sqlite:///"


class SqlQueryConfig(BuiltinConfig):
    connection_string: str
    read_only: bool = True
    max_rows: int = Field(1000, ge=1, le=10_000)
    timeout_seconds: float = Field(5.0, gt=0, le=120)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dsn" in data:
            data = dict(data)
            data.setdefault("connection_string", data.pop("dsn"))
        return data

    @model_validator(mode="after")
    def _read_only(self) -> SqlQueryConfig:
        if not self.read_only:
            raise ValueError("read_only: sql_query only reads here; read_only: false is refused")
        if not self.connection_string.startswith(SQLITE_PREFIX):
            try:
                from psycopg.conninfo import conninfo_to_dict

                conninfo_to_dict(self.connection_string)
            except ImportError:  # pragma: no cover - the postgres extra is missing
                raise ValueError("PostgreSQL needs the 'postgres' extra") from None
            except Exception:  # noqa: BLE001 - psycopg's parse errors are not one type
                raise ValueError(
                    "connection_string must be a PostgreSQL DSN (postgresql://... or"
                    " key=value) or sqlite:///path"
                ) from None
        return self


_SQLITE_DENIED = frozenset({sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA})


def _sqlite_authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_DENY if action in _SQLITE_DENIED else sqlite3.SQLITE_OK


class SqlRefused(ToolError):
    """The statement failed or was refused by the database (its message says why)."""


def _cell(value: Any) -> Any:
    """A JSON-friendly, bounded cell."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else str(value)  # exact
    if isinstance(value, dt.date | dt.time | dt.datetime | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + " [...]"


class SqlQueryTool(Tool):
    """Runs one read-only statement."""

    def __init__(
        self, name: str = "sql_query", description: str = "", *, config: SqlQueryConfig
    ) -> None:
        self.config = config
        super().__init__(
            name=name,
            description=description
            or "Run one read-only SQL query (SELECT) against the configured database.",
            parameters={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "One SQL statement"},
                    "params": {"type": "array", "description": "Values for the placeholders"},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        query = str(arguments["query"])
        params = list(arguments.get("params") or [])
        dsn = self.config.connection_string
        if dsn.startswith(SQLITE_PREFIX):
            columns, rows, more = await asyncio.to_thread(
                self._sqlite, dsn[len(SQLITE_PREFIX) :], query, params
            )
        else:
            columns, rows, more = await self._postgres(dsn, query, params)
        result: dict[str, Any] = {
            "columns": columns,
            "rows": [dict(zip(columns, (_cell(v) for v in row), strict=False)) for row in rows],
            "row_count": len(rows),
        }
        if more:
            result["truncated"] = f"only the first {self.config.max_rows} rows"
        return result

    async def _postgres(
        self, dsn: str, query: str, params: list[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        try:
            import psycopg
        except ImportError:  # pragma: no cover - the postgres extra is missing
            raise ToolError("sql_query on PostgreSQL needs the 'postgres' extra") from None
        limit = self.config.max_rows
        ms = int(self.config.timeout_seconds * 1000)
        try:
            conn = await psycopg.AsyncConnection.connect(
                dsn,
                autocommit=True,
                connect_timeout=max(1, int(self.config.timeout_seconds)),
            )
        except psycopg.Error as exc:
            raise SqlRefused(f"cannot connect to the database: {exc}") from None
        try:
            async with asyncio.timeout(self.config.timeout_seconds + 5):
                await conn.execute("BEGIN READ ONLY")
                await _refuse_privileged_role(conn)
                await conn.execute(f"SET LOCAL statement_timeout = {ms}")
                await conn.execute("SET LOCAL idle_in_transaction_session_timeout = 60000")
                cursor = conn.cursor()
                rows: list[tuple[Any, ...]] = []
                async for row in cursor.stream(query, params or None):
                    rows.append(tuple(row))
                    if len(rows) > limit:
                        break  # the rest is never received: the connection is closed below
                if cursor.description is None:
                    return [], [], False
                columns = [c.name for c in cursor.description]
                return columns, rows[:limit], len(rows) > limit
        except psycopg.Error as exc:
            raise SqlRefused(f"{type(exc).__name__}: {str(exc).strip()}") from None
        except TimeoutError:
            raise SqlRefused(f"timed out after {self.config.timeout_seconds:g}s") from None
        finally:
            await conn.close()  # the transaction is rolled back with the connection

    def _sqlite(
        self, path: str, query: str, params: list[Any]
    ) -> tuple[list[str], list[tuple[Any, ...]], bool]:
        if not Path(path).is_file():
            raise SqlRefused(f"no SQLite database at {path}")
        deadline = time.monotonic() + self.config.timeout_seconds
        try:
            conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise SqlRefused(f"cannot open the database: {exc}") from None
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_sqlite_authorizer)
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            cursor = conn.execute(query, params)  # one statement: sqlite3 refuses more
            if cursor.description is None:
                return [], [], False
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchmany(self.config.max_rows + 1)
            limit = self.config.max_rows
            return columns, [tuple(r) for r in rows[:limit]], len(rows) > limit
        except sqlite3.Error as exc:
            raise SqlRefused(f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()


_PRIVILEGED_ROLE = """
SELECT
  EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolsuper AND pg_has_role(current_user, r.oid, 'MEMBER')),
  ARRAY(
    SELECT name FROM unnest(ARRAY[
      'pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'
    ]) AS name
    WHERE to_regrole(name) IS NOT NULL AND pg_has_role(current_user, name, 'MEMBER')
  )
"""
"""Whether the connected role is (or may become) a superuser, and which of the roles that
run programs or touch server files it is a member of (``MEMBER``: what it may ``SET ROLE``
to counts, not only what it inherits)."""


async def _refuse_privileged_role(conn: Any) -> None:
    """Refuse a connection whose role could run programs or read and write server files.

    Raises:
        SqlRefused: naming the privilege and what to do instead.
    """
    cursor = await conn.execute(_PRIVILEGED_ROLE)
    row = await cursor.fetchone()
    superuser, server_roles = (bool(row[0]), list(row[1] or [])) if row else (False, [])
    if superuser or server_roles:
        what = "a superuser" if superuser else "a member of " + ", ".join(server_roles)
        raise SqlRefused(
            f"the database role of this connection is {what}: it could run programs on the"
            " database host (COPY ... TO PROGRAM) or read server files, even in a read-only"
            " transaction, so sql_query refuses it; connect as a role that may only SELECT"
        )

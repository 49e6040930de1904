"""Registry tables in the SQLite state database (migration 0003), on its worker thread."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from astromesh.errors import ConflictError, NotFoundError
from astromesh.registry.base import AgentRegistry, AgentStatus, RegisteredAgent
from astromesh.registry.memory import _lost_update
from astromesh.runs.state import utcnow
from astromesh.stores._common import sortable_timestamp
from astromesh.stores.sqlite import SQLiteBackend

_COLUMNS = "name, source, revision, tenant, created_at, updated_at"


class SQLiteAgentRegistry(AgentRegistry):
    """Shares the state backend's connection, so its migrations create these tables too."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def get(self, name: str) -> RegisteredAgent | None:
        def select(conn: sqlite3.Connection) -> RegisteredAgent | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE name = ?", (name,)).fetchone()
            return _record(row) if row else None

        return await self._backend.call(select)

    async def lookup(self, name: str) -> tuple[RegisteredAgent | None, AgentStatus]:
        def select(conn: sqlite3.Connection) -> tuple[RegisteredAgent | None, AgentStatus]:
            row = conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE name = ?", (name,)).fetchone()
            status = conn.execute(
                "SELECT status FROM agent_status WHERE name = ?", (name,)
            ).fetchone()
            return (
                _record(row) if row else None,
                AgentStatus(status[0]) if status else AgentStatus.DEPLOYED,
            )

        return await self._backend.call(select)

    async def list(self) -> list[RegisteredAgent]:
        def select(conn: sqlite3.Connection) -> list[RegisteredAgent]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM agents ORDER BY name").fetchall()
            return [_record(row) for row in rows]

        return await self._backend.call(select)

    async def create(self, name: str, source: str, *, tenant: str) -> RegisteredAgent:
        now = sortable_timestamp(utcnow())

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO agents ({_COLUMNS}) VALUES (?, ?, 1, ?, ?, ?)",
                    (name, source, tenant, now, now),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"agent {name!r} is already registered") from None

        await self._backend.call(insert)
        return await self._require(name)

    async def update(self, name: str, source: str, *, revision: int) -> RegisteredAgent:
        now = sortable_timestamp(utcnow())

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE agents SET source = ?, revision = revision + 1, updated_at = ?"
                " WHERE name = ? AND revision = ?",
                (source, now, name, revision),
            )
            if cursor.rowcount == 1:
                return
            row = conn.execute("SELECT revision FROM agents WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"agent {name!r} is not registered")
            raise _lost_update(name, row[0], revision)

        await self._backend.call(write)
        return await self._require(name)

    async def delete(self, name: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM agent_status WHERE name = ?", (name,))
                cursor = conn.execute("DELETE FROM agents WHERE name = ?", (name,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return cursor.rowcount == 1

        return await self._backend.call(remove)

    async def status(self, name: str) -> AgentStatus:
        def select(conn: sqlite3.Connection) -> AgentStatus:
            row = conn.execute("SELECT status FROM agent_status WHERE name = ?", (name,)).fetchone()
            return AgentStatus(row[0]) if row else AgentStatus.DEPLOYED

        return await self._backend.call(select)

    async def statuses(self) -> dict[str, AgentStatus]:
        def select(conn: sqlite3.Connection) -> dict[str, AgentStatus]:
            rows = conn.execute("SELECT name, status FROM agent_status").fetchall()
            return {name: AgentStatus(status) for name, status in rows}

        return await self._backend.call(select)

    async def set_status(self, name: str, status: AgentStatus) -> None:
        now = sortable_timestamp(utcnow())

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO agent_status (name, status, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET status = excluded.status,"
                " updated_at = excluded.updated_at",
                (name, status.value, now),
            )

        await self._backend.call(upsert)

    async def _require(self, name: str) -> RegisteredAgent:
        found = await self.get(name)
        if found is None:  # pragma: no cover - deleted between our write and read
            raise NotFoundError(f"agent {name!r} is not registered")
        return found


def _record(row: tuple[str, str, int, str, str, str]) -> RegisteredAgent:
    name, source, revision, tenant, created, updated = row
    return RegisteredAgent(
        name,
        source,
        revision,
        tenant,
        datetime.fromisoformat(created),
        datetime.fromisoformat(updated),
    )

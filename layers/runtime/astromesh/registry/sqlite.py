"""Registry tables in the SQLite state database (migrations 0003 and 0005), on its worker
thread."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from astromesh.errors import ConflictError, NotFoundError
from astromesh.registry.base import (
    FILE_AGENTS,
    AgentRegistry,
    AgentStatus,
    RegisteredAgent,
    StatusKey,
)
from astromesh.registry.memory import _lost_update
from astromesh.runs.state import utcnow
from astromesh.stores._common import sortable_timestamp
from astromesh.stores.sqlite import SQLiteBackend

_COLUMNS = "name, source, revision, tenant, created_at, updated_at"
_ONE = f"SELECT {_COLUMNS} FROM agents WHERE tenant = ? AND name = ?"


class SQLiteAgentRegistry(AgentRegistry):
    """Shares the state backend's connection, so its migrations create these tables too."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self._backend = backend

    async def get(self, name: str, *, tenant: str) -> RegisteredAgent | None:
        def select(conn: sqlite3.Connection) -> RegisteredAgent | None:
            row = conn.execute(_ONE, (tenant, name)).fetchone()
            return _record(row) if row else None

        return await self._backend.call(select)

    async def lookup(self, name: str, *, tenant: str) -> tuple[RegisteredAgent | None, AgentStatus]:
        def select(conn: sqlite3.Connection) -> tuple[RegisteredAgent | None, AgentStatus]:
            row = conn.execute(_ONE, (tenant, name)).fetchone()
            status = conn.execute(
                "SELECT status FROM agent_status WHERE tenant = ? AND name = ?",
                (tenant if row else FILE_AGENTS, name),
            ).fetchone()
            return (
                _record(row) if row else None,
                AgentStatus(status[0]) if status else AgentStatus.DEPLOYED,
            )

        return await self._backend.call(select)

    async def list(self, *, tenant: str | None) -> list[RegisteredAgent]:
        def select(conn: sqlite3.Connection) -> list[RegisteredAgent]:
            if tenant is None:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM agents ORDER BY name, tenant")
            else:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM agents WHERE tenant = ? ORDER BY name", (tenant,)
                )
            return [_record(row) for row in rows.fetchall()]

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
        return await self._require(name, tenant)

    async def update(
        self, name: str, source: str, *, tenant: str, revision: int
    ) -> RegisteredAgent:
        now = sortable_timestamp(utcnow())

        def write(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE agents SET source = ?, revision = revision + 1, updated_at = ?"
                " WHERE tenant = ? AND name = ? AND revision = ?",
                (source, now, tenant, name, revision),
            )
            if cursor.rowcount == 1:
                return
            row = conn.execute(
                "SELECT revision FROM agents WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"agent {name!r} is not registered")
            raise _lost_update(name, row[0], revision)

        await self._backend.call(write)
        return await self._require(name, tenant)

    async def delete(self, name: str, *, tenant: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM agent_status WHERE tenant = ? AND name = ?", (tenant, name)
                )
                cursor = conn.execute(
                    "DELETE FROM agents WHERE tenant = ? AND name = ?", (tenant, name)
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return cursor.rowcount == 1

        return await self._backend.call(remove)

    async def status(self, name: str, *, tenant: str) -> AgentStatus:
        def select(conn: sqlite3.Connection) -> AgentStatus:
            row = conn.execute(
                "SELECT status FROM agent_status WHERE tenant = ? AND name = ?", (tenant, name)
            ).fetchone()
            return AgentStatus(row[0]) if row else AgentStatus.DEPLOYED

        return await self._backend.call(select)

    async def statuses(self) -> dict[StatusKey, AgentStatus]:
        def select(conn: sqlite3.Connection) -> dict[StatusKey, AgentStatus]:
            rows = conn.execute("SELECT tenant, name, status FROM agent_status").fetchall()
            return {(tenant, name): AgentStatus(status) for tenant, name, status in rows}

        return await self._backend.call(select)

    async def set_status(self, name: str, status: AgentStatus, *, tenant: str) -> None:
        now = sortable_timestamp(utcnow())

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO agent_status (tenant, name, status, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant, name) DO UPDATE SET status = excluded.status,"
                " updated_at = excluded.updated_at",
                (tenant, name, status.value, now),
            )

        await self._backend.call(upsert)

    async def _require(self, name: str, tenant: str) -> RegisteredAgent:
        found = await self.get(name, tenant=tenant)
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

"""Registry tables in PostgreSQL (migrations 0003 and 0005), through the state backend's pool."""

from __future__ import annotations

from typing import Any

from astromesh.errors import ConflictError, NotFoundError
from astromesh.registry.base import (
    FILE_AGENTS,
    AgentRegistry,
    AgentStatus,
    RegisteredAgent,
    StatusKey,
)
from astromesh.registry.memory import _lost_update
from astromesh.stores.postgres import PostgresBackend

_COLUMNS = "name, source, revision, tenant, created_at, updated_at"


class PostgresAgentRegistry(AgentRegistry):
    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    async def get(self, name: str, *, tenant: str) -> RegisteredAgent | None:
        rows = await self._backend.execute(
            f"SELECT {_COLUMNS} FROM agents WHERE tenant = %s AND name = %s", (tenant, name)
        )
        return _record(rows[0]) if rows else None

    async def lookup(self, name: str, *, tenant: str) -> tuple[RegisteredAgent | None, AgentStatus]:
        # The status is the registered agent's when the tenant has one, else the file agent's.
        [row] = await self._backend.execute(
            "SELECT a.name, a.source, a.revision, a.tenant, a.created_at, a.updated_at,"
            " (SELECT s.status FROM agent_status AS s"
            "  WHERE s.tenant = COALESCE(a.tenant, %s) AND s.name = %s)"
            " FROM (SELECT 1) AS one LEFT JOIN agents AS a ON a.tenant = %s AND a.name = %s",
            (FILE_AGENTS, name, tenant, name),
        )
        status = AgentStatus(row[6]) if row[6] else AgentStatus.DEPLOYED
        return (_record(row[:6]) if row[0] is not None else None), status

    async def list(self, *, tenant: str | None) -> list[RegisteredAgent]:
        if tenant is None:
            rows = await self._backend.execute(
                f"SELECT {_COLUMNS} FROM agents ORDER BY name, tenant"
            )
        else:
            rows = await self._backend.execute(
                f"SELECT {_COLUMNS} FROM agents WHERE tenant = %s ORDER BY name", (tenant,)
            )
        return [_record(row) for row in rows]

    async def create(self, name: str, source: str, *, tenant: str) -> RegisteredAgent:
        rows = await self._backend.execute(
            "INSERT INTO agents (name, source, revision, tenant) VALUES (%s, %s, 1, %s)"
            f" ON CONFLICT (tenant, name) DO NOTHING RETURNING {_COLUMNS}",
            (name, source, tenant),
        )
        if not rows:
            raise ConflictError(f"agent {name!r} is already registered")
        return _record(rows[0])

    async def update(
        self, name: str, source: str, *, tenant: str, revision: int
    ) -> RegisteredAgent:
        rows = await self._backend.execute(
            "UPDATE agents SET source = %s, revision = revision + 1, updated_at = now()"
            f" WHERE tenant = %s AND name = %s AND revision = %s RETURNING {_COLUMNS}",
            (source, tenant, name, revision),
        )
        if rows:
            return _record(rows[0])
        current = await self._backend.execute(
            "SELECT revision FROM agents WHERE tenant = %s AND name = %s", (tenant, name)
        )
        if not current:
            raise NotFoundError(f"agent {name!r} is not registered")
        raise _lost_update(name, current[0][0], revision)

    async def delete(self, name: str, *, tenant: str) -> bool:
        await self._backend.execute(
            "DELETE FROM agent_status WHERE tenant = %s AND name = %s", (tenant, name)
        )
        _, count = await self._backend.execute_count(
            "DELETE FROM agents WHERE tenant = %s AND name = %s", (tenant, name)
        )
        return count == 1

    async def status(self, name: str, *, tenant: str) -> AgentStatus:
        rows = await self._backend.execute(
            "SELECT status FROM agent_status WHERE tenant = %s AND name = %s", (tenant, name)
        )
        return AgentStatus(rows[0][0]) if rows else AgentStatus.DEPLOYED

    async def statuses(self) -> dict[StatusKey, AgentStatus]:
        rows = await self._backend.execute("SELECT tenant, name, status FROM agent_status")
        return {(tenant, name): AgentStatus(status) for tenant, name, status in rows}

    async def set_status(self, name: str, status: AgentStatus, *, tenant: str) -> None:
        await self._backend.execute(
            "INSERT INTO agent_status (tenant, name, status) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant, name)"
            " DO UPDATE SET status = excluded.status, updated_at = now()",
            (tenant, name, status.value),
        )


def _record(row: tuple[Any, ...]) -> RegisteredAgent:
    name, source, revision, tenant, created, updated = row
    return RegisteredAgent(name, source, int(revision), tenant, created, updated)

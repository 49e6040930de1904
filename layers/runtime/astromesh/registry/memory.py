"""In-memory registry: for tests and throwaway servers. Same semantics as the SQL ones."""

from __future__ import annotations

import asyncio
import dataclasses

from astromesh.errors import ConflictError, NotFoundError
from astromesh.registry.base import (
    FILE_AGENTS,
    AgentRegistry,
    AgentStatus,
    RegisteredAgent,
    StatusKey,
)
from astromesh.runs.state import utcnow


class MemoryAgentRegistry(AgentRegistry):
    def __init__(self) -> None:
        self._agents: dict[StatusKey, RegisteredAgent] = {}
        self._status: dict[StatusKey, AgentStatus] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str, *, tenant: str) -> RegisteredAgent | None:
        return self._agents.get((tenant, name))

    async def list(self, *, tenant: str | None) -> list[RegisteredAgent]:
        found = [a for a in self._agents.values() if tenant is None or a.tenant == tenant]
        return sorted(found, key=lambda a: (a.name, a.tenant))

    async def create(self, name: str, source: str, *, tenant: str) -> RegisteredAgent:
        async with self._lock:
            if (tenant, name) in self._agents:
                raise ConflictError(f"agent {name!r} is already registered")
            now = utcnow()
            agent = RegisteredAgent(name, source, 1, tenant, now, now)
            self._agents[tenant, name] = agent
            return agent

    async def update(
        self, name: str, source: str, *, tenant: str, revision: int
    ) -> RegisteredAgent:
        async with self._lock:
            current = self._agents.get((tenant, name))
            if current is None:
                raise NotFoundError(f"agent {name!r} is not registered")
            if current.revision != revision:
                raise _lost_update(name, current.revision, revision)
            updated = dataclasses.replace(
                current, source=source, revision=revision + 1, updated_at=utcnow()
            )
            self._agents[tenant, name] = updated
            return updated

    async def delete(self, name: str, *, tenant: str) -> bool:
        async with self._lock:
            self._status.pop((tenant, name), None)
            return self._agents.pop((tenant, name), None) is not None

    async def lookup(self, name: str, *, tenant: str) -> tuple[RegisteredAgent | None, AgentStatus]:
        record = self._agents.get((tenant, name))
        return record, await self.status(name, tenant=tenant if record else FILE_AGENTS)

    async def status(self, name: str, *, tenant: str) -> AgentStatus:
        return self._status.get((tenant, name), AgentStatus.DEPLOYED)

    async def statuses(self) -> dict[StatusKey, AgentStatus]:
        return dict(self._status)

    async def set_status(self, name: str, status: AgentStatus, *, tenant: str) -> None:
        self._status[tenant, name] = status


def _lost_update(name: str, stored: int, expected: int) -> ConflictError:
    return ConflictError(
        f"agent {name!r} was updated concurrently (stored revision {stored}, "
        f"writer had {expected}); read it again and retry"
    )

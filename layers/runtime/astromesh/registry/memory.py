"""In-memory registry: for tests and throwaway servers. Same semantics as the SQL ones."""

from __future__ import annotations

import asyncio
import dataclasses

from astromesh.errors import ConflictError, NotFoundError
from astromesh.registry.base import AgentRegistry, AgentStatus, RegisteredAgent
from astromesh.runs.state import utcnow


class MemoryAgentRegistry(AgentRegistry):
    def __init__(self) -> None:
        self._agents: dict[str, RegisteredAgent] = {}
        self._status: dict[str, AgentStatus] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> RegisteredAgent | None:
        return self._agents.get(name)

    async def list(self) -> list[RegisteredAgent]:
        return [self._agents[name] for name in sorted(self._agents)]

    async def create(self, name: str, source: str, *, tenant: str) -> RegisteredAgent:
        async with self._lock:
            if name in self._agents:
                raise ConflictError(f"agent {name!r} is already registered")
            now = utcnow()
            agent = RegisteredAgent(name, source, 1, tenant, now, now)
            self._agents[name] = agent
            return agent

    async def update(self, name: str, source: str, *, revision: int) -> RegisteredAgent:
        async with self._lock:
            current = self._agents.get(name)
            if current is None:
                raise NotFoundError(f"agent {name!r} is not registered")
            if current.revision != revision:
                raise _lost_update(name, current.revision, revision)
            updated = dataclasses.replace(
                current, source=source, revision=revision + 1, updated_at=utcnow()
            )
            self._agents[name] = updated
            return updated

    async def delete(self, name: str) -> bool:
        async with self._lock:
            self._status.pop(name, None)
            return self._agents.pop(name, None) is not None

    async def status(self, name: str) -> AgentStatus:
        return self._status.get(name, AgentStatus.DEPLOYED)

    async def statuses(self) -> dict[str, AgentStatus]:
        return dict(self._status)

    async def set_status(self, name: str, status: AgentStatus) -> None:
        self._status[name] = status


def _lost_update(name: str, stored: int, expected: int) -> ConflictError:
    return ConflictError(
        f"agent {name!r} was updated concurrently (stored revision {stored}, "
        f"writer had {expected}); read it again and retry"
    )

"""The registry interface: registered agent documents by tenant and name, and every agent's
status.

A registered agent is kept as the text that was posted (YAML or JSON), not as a parsed
model: each instance re-validates it with the same loader as the files, so an upgrade that
tightens validation is applied to stored agents too, and line numbers keep pointing at what
the caller wrote. ``revision`` starts at 1 and grows by one on every update, which is how an
instance holding a built agent learns that another instance changed it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AgentStatus(StrEnum):
    """Whether an agent accepts runs. Upstream's ``pause``/``deploy`` answers use these words."""

    DEPLOYED = "deployed"
    PAUSED = "paused"


FILE_AGENTS = ""
"""The namespace of the statuses of file agents: one status shared by every tenant (a tenant
is never called ``""``), which is why only an admin may change it."""


@dataclass(frozen=True, slots=True)
class RegisteredAgent:
    """One agent document registered through the API, owned by ``tenant``."""

    name: str
    source: str
    revision: int
    tenant: str
    created_at: datetime
    updated_at: datetime


StatusKey = tuple[str, str]
"""``(tenant, name)`` of a status; ``tenant`` is :data:`FILE_AGENTS` for a file agent."""


class AgentRegistry(ABC):
    """Registered agents and agent statuses in one durable store, namespaced by tenant.

    Every agent is named by ``(tenant, name)``: names are unique within a tenant only, and no
    method reaches another tenant's agent unless it is given that tenant, so a caller cannot
    replace, pause or delete an agent of someone else's by knowing its name.
    """

    @abstractmethod
    async def get(self, name: str, *, tenant: str) -> RegisteredAgent | None:
        """The agent ``tenant`` registered as ``name``, or ``None``."""

    @abstractmethod
    async def list(self, *, tenant: str | None) -> list[RegisteredAgent]:
        """The tenant's registered agents by name; every tenant's (by name, then tenant) for
        ``None``."""

    @abstractmethod
    async def create(self, name: str, source: str, *, tenant: str) -> RegisteredAgent:
        """Register a new agent of ``tenant`` at revision 1.

        Raises:
            ConflictError: ``tenant`` already has an agent with this name.
        """

    @abstractmethod
    async def update(
        self, name: str, source: str, *, tenant: str, revision: int
    ) -> RegisteredAgent:
        """Replace the document if the stored revision is still ``revision``; bump it.

        Raises:
            NotFoundError: ``tenant`` has no agent of that name.
            ConflictError: someone else updated it first.
        """

    @abstractmethod
    async def delete(self, name: str, *, tenant: str) -> bool:
        """Remove ``tenant``'s agent (and its status); whether it existed."""

    async def lookup(self, name: str, *, tenant: str) -> tuple[RegisteredAgent | None, AgentStatus]:
        """``tenant``'s agent ``name`` (if any) and its status together; without one, the
        status of the file agent of that name.

        Asked on every request that runs an agent; backends answer it in one round trip.
        """
        record = await self.get(name, tenant=tenant)
        return record, await self.status(name, tenant=tenant if record else FILE_AGENTS)

    @abstractmethod
    async def status(self, name: str, *, tenant: str) -> AgentStatus:
        """The status of ``(tenant, name)`` (``deployed`` when never set)."""

    @abstractmethod
    async def statuses(self) -> dict[StatusKey, AgentStatus]:
        """Every status ever set, by ``(tenant, name)`` (absent ones are deployed)."""

    @abstractmethod
    async def set_status(self, name: str, status: AgentStatus, *, tenant: str) -> None:
        """Record the status of ``(tenant, name)`` (:data:`FILE_AGENTS` for a file agent)."""

"""The registry interface: registered agent documents by name, and every agent's status.

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


@dataclass(frozen=True, slots=True)
class RegisteredAgent:
    """One agent document registered through the API."""

    name: str
    source: str
    revision: int
    tenant: str
    created_at: datetime
    updated_at: datetime


class AgentRegistry(ABC):
    """Registered agents and agent statuses in one durable store."""

    @abstractmethod
    async def get(self, name: str) -> RegisteredAgent | None:
        """The registered agent called ``name``, or ``None``."""

    @abstractmethod
    async def list(self) -> list[RegisteredAgent]:
        """Every registered agent, by name."""

    @abstractmethod
    async def create(self, name: str, source: str, *, tenant: str) -> RegisteredAgent:
        """Register a new agent at revision 1.

        Raises:
            ConflictError: an agent with this name is already registered.
        """

    @abstractmethod
    async def update(self, name: str, source: str, *, revision: int) -> RegisteredAgent:
        """Replace the document if the stored revision is still ``revision``; bump it.

        Raises:
            NotFoundError: no agent of that name is registered.
            ConflictError: someone else updated it first.
        """

    @abstractmethod
    async def delete(self, name: str) -> bool:
        """Remove a registered agent (and its status); whether it existed."""

    async def lookup(self, name: str) -> tuple[RegisteredAgent | None, AgentStatus]:
        """The registered agent (if any) and the status of ``name`` together.

        Asked on every request that runs an agent; backends answer it in one round trip.
        """
        return await self.get(name), await self.status(name)

    @abstractmethod
    async def status(self, name: str) -> AgentStatus:
        """The agent's status (``deployed`` when never set)."""

    @abstractmethod
    async def statuses(self) -> dict[str, AgentStatus]:
        """Every status ever set, by agent name (agents absent here are deployed)."""

    @abstractmethod
    async def set_status(self, name: str, status: AgentStatus) -> None:
        """Record the agent's status."""

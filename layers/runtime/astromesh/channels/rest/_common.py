"""What several routers share: resolving an agent a caller may run."""

from __future__ import annotations

from astromesh.agent import Agent
from astromesh.auth import Principal
from astromesh.channels.catalog import AgentCatalog, CatalogEntry
from astromesh.channels.errors import AgentPaused
from astromesh.channels.security import require_agent
from astromesh.registry import AgentStatus


async def visible_entry(catalog: AgentCatalog, principal: Principal, name: str) -> CatalogEntry:
    """The agent ``name`` if the key may use it (403 first, then 404)."""
    require_agent(principal, name)
    return await catalog.entry(name)


async def runnable_agent(catalog: AgentCatalog, principal: Principal, name: str) -> Agent:
    """The built agent ``name``, refusing a paused one with 409."""
    entry = await visible_entry(catalog, principal, name)
    if entry.status is AgentStatus.PAUSED:
        raise AgentPaused(f"agent {name!r} is paused; POST /v1/agents/{name}/resume to run it")
    return await catalog.agent(entry)

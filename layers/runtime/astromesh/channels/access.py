"""Who may do what, for every channel: a key to a principal, and an agent a principal may run.

Free of any web framework: the REST app (through the dependencies in
:mod:`astromesh.channels.security`), the local WebSocket, the AWS WebSocket functions and
the messaging webhooks all call these, so the rules are written once and a Lambda that only
authenticates ($connect) does not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from astromesh.auth import Principal
from astromesh.channels.errors import AgentPaused, Forbidden, Unauthorized
from astromesh.registry import AgentStatus

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.channels.catalog import AgentCatalog, CatalogEntry
    from astromesh.channels.services import Services


async def authenticate(services: Services, key: str | None) -> Principal:
    """The principal for ``key``.

    Without a key, the caller is let in only while the server runs open: auth is not
    ``required`` and no active key exists in the store (checked on each such request, so a
    key created with ``astromesh keys create`` closes the server at once).

    Raises:
        Unauthorized: a missing key where one is needed, or an unknown or revoked key.
    """
    store = await services.keys()
    if key is None:
        if services.settings.auth == "required" or await store.has_active():
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        return Principal.open()
    record = await store.verify(key)
    if record is None:
        raise Unauthorized("unknown or revoked API key")
    return Principal(record.tenant, frozenset(record.agents), record.key_id)


def require_agent(principal: Principal, agent: str) -> None:
    """Refuse an agent outside the key's set (checked before looking the agent up, so a key
    cannot probe which agents exist).

    Raises:
        Forbidden: the key may not use ``agent``.
    """
    if not principal.allows(agent):
        raise Forbidden(f"this API key may not use agent {agent!r}")


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

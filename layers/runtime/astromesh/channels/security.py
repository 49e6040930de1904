"""Who is calling: API keys from ``Authorization: Bearer``, ``x-api-key`` or (WebSocket only,
since browsers cannot set headers there) ``?api_key=``; and what they may touch.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from astromesh.auth import Principal
from astromesh.channels.errors import Forbidden, Unauthorized
from astromesh.channels.services import Services, get_services


def credential(connection: HTTPConnection, *, allow_query: bool = False) -> str | None:
    """The API key the client sent, if any."""
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = connection.headers.get("x-api-key")
    if key:
        return key.strip()
    if allow_query:
        return connection.query_params.get("api_key") or None
    return None


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


async def current_principal(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> Principal:
    """FastAPI dependency for REST routes."""
    return await authenticate(services, credential(request))


def require_agent(principal: Principal, agent: str) -> None:
    """Refuse an agent outside the key's set (checked before looking the agent up, so a key
    cannot probe which agents exist).

    Raises:
        Forbidden: the key may not use ``agent``.
    """
    if not principal.allows(agent):
        raise Forbidden(f"this API key may not use agent {agent!r}")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]

"""The FastAPI side of access: the key a request carries (``Authorization: Bearer``,
``x-api-key`` or, WebSocket only since browsers cannot set headers there, ``?api_key=``), and
the dependencies routes declare. The rules themselves are in :mod:`astromesh.channels.access`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from astromesh.auth import Principal
from astromesh.channels.access import authenticate
from astromesh.channels.catalog import AgentCatalog
from astromesh.channels.services import Services


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


async def current_principal(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> Principal:
    """FastAPI dependency for REST routes."""
    return await authenticate(services, credential(request))


def services_of(connection: HTTPConnection) -> Services:
    """The app's services, from a request or a WebSocket."""
    services: Services = connection.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """FastAPI dependency. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in
    a worker thread, a thread hop that cost more than the rest of a health request."""
    return services_of(request)


async def get_catalog(request: Request) -> AgentCatalog:
    return await services_of(request).catalog()


CatalogDep = Annotated[AgentCatalog, Depends(get_catalog)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]

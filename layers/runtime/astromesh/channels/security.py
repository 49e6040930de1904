"""The FastAPI side of access: the key a request carries (``Authorization: Bearer``,
``x-api-key`` or, WebSocket only since browsers cannot set headers there, ``?api_key=``), and
the dependencies routes declare. The rules themselves are in :mod:`astromesh.channels.access`.

:func:`current_principal` is where every authenticated route's role is checked, against the
one table :data:`~astromesh.channels.access.ROUTE_ROLES`: a route cannot take a principal
without passing it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.requests import HTTPConnection

from astromesh.auth import Principal
from astromesh.auth.base import TENANT_PATTERN
from astromesh.channels.access import (
    TENANT_PARAM,
    acting_as,
    authenticate,
    require_role,
    route_role,
)
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


def route_path(connection: HTTPConnection) -> str:
    """The path template of the route serving ``connection`` (``/v1/agents/{name}``).

    FastAPI and recent Starlette put the route in the scope; older ones only its endpoint,
    which is looked up among the app's routes."""
    route = connection.scope.get("route")
    if route is None:
        endpoint = connection.scope.get("endpoint")
        route = next(
            (r for r in connection.app.routes if getattr(r, "endpoint", None) is endpoint), None
        )
    # The request's URL only without a route: building it costs more than the rest here.
    path = getattr(route, "path", None)
    return str(path if path is not None else connection.url.path)


async def current_principal(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    tenant: Annotated[
        str | None,
        Query(
            alias=TENANT_PARAM,
            description="Admin keys only: act in this tenant instead of the key's own.",
            pattern=TENANT_PATTERN,
            max_length=64,
        ),
    ] = None,
) -> Principal:
    """FastAPI dependency for REST routes: authenticate, check the route's role, and apply
    an admin's ``?tenant=``."""
    principal = await authenticate(services, credential(request))
    path = route_path(request)
    require_role(principal, route_role(request.method, path), f"{request.method} {path}")
    return acting_as(principal, tenant)


def listing_tenant(request: Request, principal: Principal) -> str | None:
    """The tenant whose registered agents a listing shows: the principal's, or every
    tenant's (``None``) for an admin that names none."""
    if principal.is_admin and TENANT_PARAM not in request.query_params:
        return None
    return principal.tenant


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

"""``GET /v1/system/status``, ``GET /v1/system/doctor`` and ``GET /v1/providers``: upstream's
``astromeshctl status``, ``doctor`` and ``providers list`` (logic in
:mod:`astromesh.channels.system`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.channels.openapi import AUTHENTICATED, errors
from astromesh.channels.schemas import DoctorReport, ProviderList, SystemStatus
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.channels.system import run_checks, system_status

router = APIRouter(tags=["system"])


@router.get("/v1/system/status", response_model=SystemStatus, responses=errors(AUTHENTICATED))
async def status(_principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """This process: version, uptime, mode (``dev`` or ``lambda``), pid and the file agents
    that can run; upstream's mesh fields are empty (no mesh here)."""
    return system_status(services)


@router.get("/v1/system/doctor", response_model=DoctorReport, responses=errors(AUTHENTICATED))
async def doctor(_principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Checks of the state store, Redis, the file agents and each model candidate's health
    endpoint; ``healthy`` is false when one is degraded, in error or unavailable. Always 200
    with the findings (a failed check is a finding, not an error of this route)."""
    return await run_checks(services)


@router.get("/v1/providers", response_model=ProviderList, responses=errors(AUTHENTICATED))
async def providers(_principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """The providers the server's ProviderConfig documents name, with their endpoints and
    models: the operator's infrastructure, so an admin's (the route's role). The names of the
    key variables are shown, never their values."""
    listed = [
        {
            "name": name,
            "type": entry.type,
            "endpoint": entry.endpoint or "",
            "models": list(entry.models),
            "api_key_env": entry.api_key_env,
        }
        for name, entry in sorted(services.runtime.config.providers.items())
    ]
    return {"providers": listed, "count": len(listed)}

"""``GET /v1/health``: cheap, unauthenticated, touches no store."""

from __future__ import annotations

from fastapi import APIRouter

from astromesh import __version__
from astromesh.channels.openapi import errors
from astromesh.channels.schemas import Health
from astromesh.channels.security import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=Health, responses=errors())
async def health(services: ServicesDep) -> Health:
    return Health(
        version=__version__,
        agents=len(services.runtime.agent_names()),
        auth=services.settings.auth,
    )

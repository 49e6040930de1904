"""``GET /v1/tools``: every tool of every agent the key may use, with JSON-Schema parameters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.channels.schemas import ToolList
from astromesh.channels.security import CatalogDep, CurrentPrincipal
from astromesh.errors import ConfigurationError

router = APIRouter(tags=["tools"])


@router.get("/v1/tools", response_model=ToolList)
async def list_tools(principal: CurrentPrincipal, catalog: CatalogDep) -> dict[str, Any]:
    """Schemas come from the built tools (derived from type hints for Python tools); an
    agent that cannot be built here lists its configured tools with ``available: false``."""
    tools: list[dict[str, Any]] = []
    for entry in await catalog.entries():
        if not principal.allows(entry.name):
            continue
        types = {cfg.name: cfg.type for cfg in entry.document.spec.tools}
        try:
            agent = await catalog.agent(entry)
        except ConfigurationError as exc:
            for cfg in entry.document.spec.tools:
                tools.append(
                    {
                        "name": cfg.name,
                        "description": cfg.description,
                        "parameters": cfg.json_schema(),
                        "agent": entry.name,
                        "type": cfg.type,
                        "available": False,
                        "error": exc.message,
                    }
                )
            continue
        for definition in agent.tools.definitions():
            tools.append(
                {
                    **definition.model_dump(mode="json"),
                    "agent": entry.name,
                    "type": types.get(definition.name, "python"),
                    "available": True,
                }
            )
    return {"tools": tools}

"""``GET /v1/tools``: every tool of every agent the key may use, with JSON-Schema parameters.

Listing is a first use of an agent's MCP servers (see :mod:`astromesh.tools.registry`): their
tools are named by the server, so they are connected here to be listed, all agents at once.
A server that cannot be reached lists its config with ``available: false`` and the reason;
the agent's other tools are listed as usual.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from astromesh.agent import Agent
from astromesh.channels.catalog import AgentCatalog, CatalogEntry
from astromesh.channels.openapi import AUTHENTICATED, errors
from astromesh.channels.schemas import ToolList
from astromesh.channels.security import CatalogDep, CurrentPrincipal, listing_tenant
from astromesh.errors import AstromeshError, ConfigurationError

router = APIRouter(tags=["tools"])


@router.get("/v1/tools", response_model=ToolList, responses=errors(AUTHENTICATED))
async def list_tools(
    request: Request, principal: CurrentPrincipal, catalog: CatalogDep
) -> dict[str, Any]:
    """Schemas come from the built tools (derived from type hints for Python tools); an
    agent that cannot be built here lists its configured tools with ``available: false``.
    The agents are the ones ``GET /v1/agents`` lists to the same key."""
    entries = [
        entry
        for entry in await catalog.entries(tenant=listing_tenant(request, principal))
        if principal.allows(entry.name)
    ]
    listed = await asyncio.gather(*(_agent_tools(catalog, entry) for entry in entries))
    return {"tools": [tool for tools in listed for tool in tools]}


async def _agent_tools(catalog: AgentCatalog, entry: CatalogEntry) -> list[dict[str, Any]]:
    configs = entry.document.spec.tools
    try:
        agent: Agent = await catalog.agent(entry)
    except ConfigurationError as exc:
        return [_unavailable(entry, cfg, exc.message) for cfg in configs]
    pending: str | None = None
    try:
        await agent.tools.ensure_ready()
    except AstromeshError as exc:
        pending = exc.message
    types = {cfg.name: cfg.type for cfg in configs}
    tools = [
        {
            **tool.definition.model_dump(mode="json"),
            "agent": entry.name,
            "tenant": entry.tenant or None,
            "type": types.get(tool.name) or _type_of(tool),
            "available": True,
        }
        for tool in agent.tools.available()
    ]
    if pending is not None:
        still = set(agent.tools.pending)
        tools += [_unavailable(entry, cfg, pending) for cfg in configs if cfg.name in still]
    return tools


def _type_of(tool: Any) -> str:
    """The config type of a tool whose name is not a config's (an MCP server's tool)."""
    from astromesh.tools.mcp import MCPServerTool

    inner = getattr(tool, "inner", tool)  # a DryRunTool lists as what it stands for
    return "mcp" if isinstance(inner, MCPServerTool) else "python"


def _unavailable(entry: CatalogEntry, cfg: Any, error: str) -> dict[str, Any]:
    return {
        "name": cfg.name,
        "description": cfg.description,
        "parameters": cfg.json_schema(),
        "agent": entry.name,
        "tenant": entry.tenant or None,
        "type": cfg.type,
        "available": False,
        "error": error,
    }

"""``GET /v1/tools/builtin`` and ``POST /v1/tools/execute``: upstream's ``astromeshctl tools
list`` and ``tools test``, under the registration policy (see
:mod:`astromesh.channels.builtin_calls`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.channels.builtin_calls import execute_builtin, list_builtins
from astromesh.channels.openapi import AGENT, AUTHENTICATED, WITH_BODY, errors
from astromesh.channels.schemas import BuiltinToolList, ToolExecuteRequest, ToolExecuteResult
from astromesh.channels.security import CatalogDep, CurrentPrincipal, ServicesDep

router = APIRouter(tags=["tools"])


@router.get("/v1/tools/builtin", response_model=BuiltinToolList, responses=errors(AUTHENTICATED))
async def builtin_tools(
    _principal: CurrentPrincipal, services: ServicesDep, catalog: CatalogDep
) -> dict[str, Any]:
    """Every builtin tool with its JSON-Schema parameters; ``allowed``: whether
    ``POST /v1/tools/execute`` may run it here."""
    tools = list_builtins(services.runtime, catalog.policy)
    return {"tools": tools, "count": len(tools)}


@router.post(
    "/v1/tools/execute",
    response_model=ToolExecuteResult,
    responses=errors(AUTHENTICATED, WITH_BODY, AGENT),
)
async def execute_tool(
    body: ToolExecuteRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
    catalog: CatalogDep,
) -> dict[str, Any]:
    """Run one builtin with ``arguments`` (and its ``config``), held to what an agent
    registered through the API may do: 403 naming the policy rule when the tool or its
    config is not granted, 422 naming ``config`` or ``arguments`` when they are not what the
    tool takes. A tool that fails (an address the SSRF guard refuses, a file outside its
    root) answers 200 with ``status: "error"`` and the reason in ``result``, as upstream's
    client expects."""
    return await execute_builtin(
        services.runtime,
        catalog.policy,
        principal,
        tool_name=body.tool_name,
        arguments=body.arguments,
        config=body.config,
    )

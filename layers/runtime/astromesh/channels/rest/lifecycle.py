"""Agent lifecycle: register (YAML or JSON), update, remove, pause, resume, deploy.

Registered agents live in the durable registry, so every instance serves the same version,
and belong to the tenant of the key that registered them (an admin's ``?tenant=`` names
another): every route here acts on that tenant's agent only, and another tenant's answers
404 like an unknown name. File agents are the read-only defaults shared by every tenant
(changing or removing one answers 409; pausing, resuming or deploying one is admin-only).
The role each route needs is in :data:`astromesh.channels.access.ROUTE_ROLES`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from astromesh.channels.access import require_agent, require_status_change, visible_entry
from astromesh.channels.catalog import AgentCatalog
from astromesh.channels.openapi import AGENT, AUTHENTICATED, errors
from astromesh.channels.schemas import (
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    document_warnings,
)
from astromesh.channels.security import CatalogDep, CurrentPrincipal
from astromesh.registry import AgentStatus
from astromesh.text_boundary import InvalidText, TextIssue, problem_message

router = APIRouter(tags=["agent lifecycle"])


_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An astromesh/v1 Agent document, as JSON or YAML",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


_STATUS = errors(AUTHENTICATED, AGENT, 409)


async def _document_text(request: Request) -> str:
    """The posted document; bytes that are not UTF-8 are ``invalid_text`` at their line."""
    raw = await request.body()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        problem = f"a byte that is not UTF-8 (0x{raw[exc.start]:02X})"
        raise InvalidText(
            [TextIssue("", problem_message(problem, exc.start), line, column)]
        ) from None


@router.post(
    "/v1/agents",
    status_code=201,
    response_model=AgentRegistered,
    openapi_extra=_DOCUMENT_BODY,
    responses=errors(AUTHENTICATED, 409, 413),
)
async def register_agent(
    request: Request, principal: CurrentPrincipal, catalog: CatalogDep
) -> JSONResponse:
    """Register an agent; validated like a file (422 lists file, line, field of each issue)."""
    text = await _document_text(request)
    document = catalog.parse(text, may_use_agent=principal.allows)
    require_agent(principal, document.name)
    entry = await catalog.register(text, tenant=principal.tenant, may_use_agent=principal.allows)
    body = AgentRegistered(
        name=entry.name, revision=entry.revision, warnings=document_warnings(document.warnings)
    )
    return JSONResponse(body.model_dump(), status_code=201)


@router.put(
    "/v1/agents/{name}",
    response_model=AgentUpdated,
    openapi_extra=_DOCUMENT_BODY,
    responses=errors(AUTHENTICATED, AGENT, 409, 413),
)
async def update_agent(
    name: str, request: Request, principal: CurrentPrincipal, catalog: CatalogDep
) -> AgentUpdated:
    """Replace a registered agent's document; instances pick it up on their next request."""
    require_agent(principal, name)
    text = await _document_text(request)
    entry = await catalog.update(
        name, text, tenant=principal.tenant, may_use_agent=principal.allows
    )
    return AgentUpdated(
        agent=name, revision=entry.revision, warnings=document_warnings(entry.document.warnings)
    )


@router.delete(
    "/v1/agents/{name}", response_model=AgentRemoved, responses=errors(AUTHENTICATED, AGENT, 409)
)
async def remove_agent(name: str, principal: CurrentPrincipal, catalog: CatalogDep) -> AgentRemoved:
    require_agent(principal, name)
    await catalog.remove(name, tenant=principal.tenant)
    return AgentRemoved(name=name)


async def _set_status(
    catalog: AgentCatalog, principal: CurrentPrincipal, name: str, status: AgentStatus
) -> AgentStatusChanged:
    entry = await visible_entry(catalog, principal, name)
    require_status_change(principal, entry)
    await catalog.set_status(entry, status)
    return AgentStatusChanged(agent=name, status=status.value)  # type: ignore[arg-type]


@router.post("/v1/agents/{name}/pause", response_model=AgentStatusChanged, responses=_STATUS)
async def pause_agent(
    name: str, principal: CurrentPrincipal, catalog: CatalogDep
) -> AgentStatusChanged:
    """Stop accepting runs (running ones finish); a file agent only by an admin, for every
    tenant."""
    return await _set_status(catalog, principal, name, AgentStatus.PAUSED)


@router.post("/v1/agents/{name}/resume", response_model=AgentStatusChanged, responses=_STATUS)
async def resume_agent(
    name: str, principal: CurrentPrincipal, catalog: CatalogDep
) -> AgentStatusChanged:
    return await _set_status(catalog, principal, name, AgentStatus.DEPLOYED)


@router.post("/v1/agents/{name}/deploy", response_model=AgentStatusChanged, responses=_STATUS)
async def deploy_agent(
    name: str, principal: CurrentPrincipal, catalog: CatalogDep
) -> AgentStatusChanged:
    """Upstream's word for making an agent serve runs; the same as resume here."""
    return await _set_status(catalog, principal, name, AgentStatus.DEPLOYED)

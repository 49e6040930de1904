"""Conversation memory of an agent per session, isolated by tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from astromesh.channels.access import visible_entry
from astromesh.channels.errors import NotConfigured
from astromesh.channels.openapi import AGENT, AUTHENTICATED, errors
from astromesh.channels.schemas import HistoryCleared, HistoryResponse
from astromesh.channels.security import CatalogDep, CurrentPrincipal
from astromesh.channels.views import history_message

router = APIRouter(tags=["memory"])

_ERRORS = errors(AUTHENTICATED, AGENT)


@router.get(
    "/v1/memory/{agent}/history/{session_id}", response_model=HistoryResponse, responses=_ERRORS
)
async def read_history(
    agent: str,
    session_id: str,
    principal: CurrentPrincipal,
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """The session's last ``limit`` messages, oldest first (upstream answered an empty list)."""
    built = await catalog.agent(await visible_entry(catalog, principal, agent))
    messages = await built.memory.history(built.session_key(session_id, principal.tenant), limit)
    return {
        "agent": agent,
        "session_id": session_id,
        "history": [history_message(m) for m in messages],
        "limit": limit,
    }


@router.delete(
    "/v1/memory/{agent}/history/{session_id}", response_model=HistoryCleared, responses=_ERRORS
)
async def clear_history(
    agent: str, session_id: str, principal: CurrentPrincipal, catalog: CatalogDep
) -> HistoryCleared:
    built = await catalog.agent(await visible_entry(catalog, principal, agent))
    removed = await built.memory.clear(built.session_key(session_id, principal.tenant))
    return HistoryCleared(agent=agent, session_id=session_id, removed=removed)


@router.get("/v1/memory/{agent}/semantic", responses=errors(AUTHENTICATED, AGENT))
async def search_semantic(
    agent: str,
    principal: CurrentPrincipal,
    catalog: CatalogDep,
    query: str = "",
    top_k: Annotated[int, Query(ge=1, le=100)] = 10,
    session_id: str = "default",
) -> dict[str, Any]:
    """The agent's semantic memories for the caller's tenant: the most similar to ``query``,
    or the latest ones without a query. 404 ``semantic_memory_not_configured`` when the
    agent has no semantic memory."""
    built = await catalog.agent(await visible_entry(catalog, principal, agent))
    if built.semantic is None:
        raise NotConfigured(
            "semantic_memory_not_configured",
            f"agent {agent!r} has no semantic memory (spec.memory.semantic)",
        )
    key = built.session_key(session_id, principal.tenant)
    hits = await built.semantic.list(key, query=query or None, top_k=top_k)
    return {
        "agent": agent,
        "query": query,
        "results": [hit.as_dict() for hit in hits],
        "top_k": top_k,
    }

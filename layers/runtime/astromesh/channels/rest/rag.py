"""RAG routes: the request shapes of the contract, answered 501 until RAG is built.

An unknown pipeline is still a 404 (the pipelines are known from the agents folder), so a
client's mistakes surface now, not when RAG arrives.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.channels.errors import NotAvailable
from astromesh.channels.schemas import ErrorResponse, RagIngestRequest, RagQueryRequest
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.errors import NotFoundError

router = APIRouter(tags=["rag"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 404, 422, 501)
}


def _not_built(services: ServicesDep, pipeline: str) -> NotAvailable:
    known = services.runtime.config.rag_pipelines
    if pipeline not in known:
        names = ", ".join(sorted(known)) or "none"
        raise NotFoundError(f"RAG pipeline {pipeline!r} not found (known pipelines: {names})")
    return NotAvailable(
        "rag_not_available",
        f"RAG pipeline {pipeline!r} is configured, but RAG ingestion and retrieval are not"
        " built yet",
    )


@router.post("/v1/rag/ingest", status_code=501, responses=_RESPONSES)
async def ingest(
    body: RagIngestRequest, _principal: CurrentPrincipal, services: ServicesDep
) -> None:
    raise _not_built(services, body.pipeline)


@router.post("/v1/rag/query", status_code=501, responses=_RESPONSES)
async def query(body: RagQueryRequest, _principal: CurrentPrincipal, services: ServicesDep) -> None:
    raise _not_built(services, body.pipeline)

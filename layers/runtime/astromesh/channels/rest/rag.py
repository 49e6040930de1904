"""RAG routes: ingest a document into a pipeline, query it (an unknown pipeline is a 404
naming the known ones)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.channels.openapi import AGENT, AUTHENTICATED, WITH_BODY, errors
from astromesh.channels.schemas import RagIngestRequest, RagQueryRequest
from astromesh.channels.security import CurrentPrincipal, ServicesDep

router = APIRouter(tags=["rag"])

_RESPONSES = errors(AUTHENTICATED, WITH_BODY, AGENT, 502, 504)


@router.post("/v1/rag/ingest", responses=_RESPONSES)
async def ingest(
    body: RagIngestRequest, _principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """Chunk, embed and index one document (unchanged documents write nothing)."""
    pipeline = await (await services.runtime.rag()).get(body.pipeline)
    result = await pipeline.ingest(body.document, body.metadata, body.doc_id_prefix)
    return {"pipeline": body.pipeline, "chunks": len(result.chunks)}


@router.post("/v1/rag/query", responses=_RESPONSES)
async def query(
    body: RagQueryRequest, _principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """The ``top_k`` best passages for ``query``, reranked as the pipeline says."""
    pipeline = await (await services.runtime.rag()).get(body.pipeline)
    results = await pipeline.query(body.query, body.top_k)
    return {"query": body.query, "results": results, "top_k": body.top_k}

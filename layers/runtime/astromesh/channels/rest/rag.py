"""RAG routes: ingest a document into a pipeline, query it (an unknown pipeline is a 404
naming the known ones), and upstream's ``/v1/rag/pipelines``: list and read the pipelines.

Creating, replacing or removing a pipeline through the API is refused (``501
rag_pipelines_read_only``): a pipeline names an embedding server and a vector store
connection, and is shared by every tenant (``/v1/rag/ingest`` is admin-only for that
reason); letting a key choose them would let it point the server's embedding calls and
database connections where it likes. Pipelines are ``RAGPipeline`` documents in the agents
folder, deployed with the code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from astromesh.channels.errors import NotAvailable
from astromesh.channels.openapi import AGENT, AUTHENTICATED, WITH_BODY, errors
from astromesh.channels.rag_views import pipeline_document, pipeline_summary
from astromesh.channels.schemas import RagIngestRequest, RagPipelineList, RagQueryRequest
from astromesh.channels.security import CurrentPrincipal, ServicesDep
from astromesh.errors import NotFoundError

router = APIRouter(tags=["rag"])

_RESPONSES = errors(AUTHENTICATED, WITH_BODY, AGENT, 502, 504)
_READ_ONLY = (
    "RAG pipelines are read-only through the API: a pipeline names an embedding server and a"
    " vector store connection and is shared by every tenant, so it is the operator's"
    " RAGPipeline document in the agents folder, deployed with the code (see GET"
    " /v1/rag/pipelines for the ones served here)"
)


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


@router.get("/v1/rag/pipelines", response_model=RagPipelineList, responses=errors(AUTHENTICATED))
async def list_pipelines(_principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Upstream's ``{"pipelines": [{name, description, backend}]}``."""
    documents = services.runtime.config.rag_pipelines
    return {"pipelines": [pipeline_summary(documents[name]) for name in sorted(documents)]}


@router.get("/v1/rag/pipelines/{name}", responses=errors(AUTHENTICATED, AGENT))
async def get_pipeline(
    name: str, _principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """The pipeline's document, its connection details redacted."""
    documents = services.runtime.config.rag_pipelines
    if name not in documents:
        known = ", ".join(sorted(documents)) or "none"
        raise NotFoundError(f"RAG pipeline {name!r} not found (known pipelines: {known})")
    return pipeline_document(documents[name])


@router.post("/v1/rag/pipelines", responses=errors(AUTHENTICATED, 501))
async def create_pipeline(_principal: CurrentPrincipal) -> None:
    """Refused: ``501 rag_pipelines_read_only`` (see the module's reason)."""
    raise NotAvailable("rag_pipelines_read_only", _READ_ONLY)


@router.put("/v1/rag/pipelines/{name}", responses=errors(AUTHENTICATED, 501))
async def replace_pipeline(name: str, _principal: CurrentPrincipal) -> None:
    """Refused: ``501 rag_pipelines_read_only``."""
    raise NotAvailable("rag_pipelines_read_only", _READ_ONLY)


@router.delete("/v1/rag/pipelines/{name}", responses=errors(AUTHENTICATED, 501))
async def delete_pipeline(name: str, _principal: CurrentPrincipal) -> None:
    """Refused: ``501 rag_pipelines_read_only``."""
    raise NotAvailable("rag_pipelines_read_only", _READ_ONLY)

"""How a RAG pipeline is shown through the API (``/v1/rag/pipelines``).

Any key that may query may read the pipelines, so what could open a door is left out: the
vector store's ``connection`` (a DSN may hold a password), its ``path`` and the embedding
server's ``endpoint`` (server-side locations) are replaced by :data:`REDACTED` when set. The
environment variable named by ``api_key_env`` is a name, not a secret, and is kept.
"""

from __future__ import annotations

from typing import Any

from astromesh.config.rag import RAGPipelineDocument

REDACTED = "[redacted]"


def pipeline_summary(document: RAGPipelineDocument) -> dict[str, Any]:
    """Upstream's list entry: ``name``, ``description``, ``backend``."""
    return {
        "name": document.name,
        "description": document.metadata.description or "",
        "backend": document.spec.vector_store.backend,
    }


def pipeline_document(document: RAGPipelineDocument) -> dict[str, Any]:
    """The document as upstream returns it (``apiVersion``, ``kind``, ``metadata``,
    ``spec``), redacted as the module says."""
    spec = document.spec.model_dump(mode="json")
    store = spec["vector_store"]
    for key in ("connection", "path"):
        if store.get(key) is not None:
            store[key] = REDACTED
    if spec["embeddings"].get("endpoint") is not None:
        spec["embeddings"]["endpoint"] = REDACTED
    return {
        "apiVersion": "astromesh/v1",
        "kind": "RAGPipeline",
        "metadata": document.metadata.model_dump(mode="json"),
        "spec": spec,
    }

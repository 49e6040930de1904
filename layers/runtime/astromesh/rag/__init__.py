"""Retrieval-augmented generation: chunk -> embed -> index -> retrieve -> rerank.

Importing this package is cheap (no numpy, onnxruntime or FAISS): heavy modules load only
when a pipeline that needs them is built, so a Lambda that never serves RAG never pays.

Entry points: :func:`build_pipeline` (one ``RAGPipeline`` document), :class:`PipelineRegistry`
(all of a configuration's pipelines, built on first use), :func:`ingest_paths` (files and
folders) and :func:`retrieve_for_tool` (the ``type: rag`` tool's answer).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.rag.ingest import IngestReport, ingest_file, ingest_paths, read_document
    from astromesh.rag.pipeline import IngestResult, PipelineRegistry, RAGPipeline, build_pipeline
    from astromesh.rag.tool import format_hits, retrieve_for_tool
    from astromesh.rag.types import Chunk, Hit, Record

_EXPORTS = {
    "Chunk": "astromesh.rag.types",
    "Hit": "astromesh.rag.types",
    "IngestReport": "astromesh.rag.ingest",
    "IngestResult": "astromesh.rag.pipeline",
    "PipelineRegistry": "astromesh.rag.pipeline",
    "RAGPipeline": "astromesh.rag.pipeline",
    "Record": "astromesh.rag.types",
    "build_pipeline": "astromesh.rag.pipeline",
    "format_hits": "astromesh.rag.tool",
    "ingest_file": "astromesh.rag.ingest",
    "ingest_paths": "astromesh.rag.ingest",
    "read_document": "astromesh.rag.ingest",
    "retrieve_for_tool": "astromesh.rag.tool",
}
"""Where each name lives, imported on first use: the memory context builder needs only
``Hit`` (``rag.types``), not the ingestion and pipeline modules."""

__all__ = [
    "Chunk",
    "Hit",
    "IngestReport",
    "IngestResult",
    "PipelineRegistry",
    "RAGPipeline",
    "Record",
    "build_pipeline",
    "format_hits",
    "ingest_file",
    "ingest_paths",
    "read_document",
    "retrieve_for_tool",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Retrieval-augmented generation: chunk -> embed -> index -> retrieve -> rerank.

Importing this package is cheap (no numpy, onnxruntime or FAISS): heavy modules load only
when a pipeline that needs them is built, so a Lambda that never serves RAG never pays.

Entry points: :func:`build_pipeline` (one ``RAGPipeline`` document), :class:`PipelineRegistry`
(all of a configuration's pipelines, built on first use), :func:`ingest_paths` (files and
folders) and :func:`retrieve_for_tool` (the ``type: rag`` tool's answer).
"""

from astromesh.rag.ingest import IngestReport, ingest_file, ingest_paths, read_document
from astromesh.rag.pipeline import IngestResult, PipelineRegistry, RAGPipeline, build_pipeline
from astromesh.rag.tool import format_hits, retrieve_for_tool
from astromesh.rag.types import Chunk, Hit, Record

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

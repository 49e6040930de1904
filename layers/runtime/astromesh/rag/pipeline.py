"""``RAGPipeline``: a pipeline document made runnable (chunk -> embed -> index -> retrieve ->
rerank), and the registry that builds each one once per process.

Ingestion is idempotent by content hash. A document's hash covers its text, its metadata
and the settings that shape its vectors (chunking and embedding model), so re-ingesting an
unchanged document writes nothing, while a changed document - or the same document under a
new chunk size - replaces its old chunks in one step.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from astromesh.errors import NotFoundError
from astromesh.rag.chunking import Chunker, build_chunker
from astromesh.rag.embeddings import Embedder, build_embedder
from astromesh.rag.rerank import NoReranker, Reranker, build_reranker
from astromesh.rag.types import Chunk, Hit, Record
from astromesh.rag.vectorstores import VectorStore, build_vector_store
from astromesh.telemetry import genai

if TYPE_CHECKING:
    from astromesh.config.rag import RAGPipelineDocument
    from astromesh.stores.base import StateBackend

IngestStatus = Literal["indexed", "replaced", "unchanged", "empty"]


@dataclass(slots=True)
class IngestResult:
    """What ingesting one document did. ``chunks`` are the document's chunks whether or not
    they had to be written (so ``len(chunks)`` is the REST ``chunks`` count either way)."""

    doc_id: str
    source: str
    status: IngestStatus
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def written(self) -> bool:
        """Whether the vector store was written to."""
        return self.status in ("indexed", "replaced")


class RAGPipeline:
    """One pipeline's services, built once and shared by every request.

    Args:
        candidates: how many hits to fetch from the store before reranking
            (``retrieval.top_k``); a query asking for more fetches that many instead.
        similarity_threshold: hits below this cosine similarity are dropped before reranking.
        fingerprint: the settings folded into every document hash.
    """

    def __init__(
        self,
        name: str,
        *,
        chunker: Chunker,
        embedder: Embedder,
        store: VectorStore,
        reranker: Reranker | None = None,
        candidates: int = 10,
        similarity_threshold: float = 0.0,
        fingerprint: str = "",
    ) -> None:
        self.name = name
        self.chunker = chunker
        self.embedder = embedder
        self.store = store
        self.reranker = reranker or NoReranker()
        self.candidates = candidates
        self.similarity_threshold = similarity_threshold
        self.fingerprint = fingerprint

    # -- ingestion --------------------------------------------------------------------------

    def content_hash(self, text: str, metadata: Mapping[str, Any] | None) -> str:
        """The hash that decides whether a re-ingested document changed."""
        digest = hashlib.sha256()
        for part in (self.fingerprint, json.dumps(metadata or {}, sort_keys=True), text):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        return digest.hexdigest()

    async def ingest_text(
        self,
        text: str,
        *,
        doc_id: str,
        source: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> IngestResult:
        """Index ``text`` as document ``doc_id`` unless it is already indexed unchanged."""
        content_hash = self.content_hash(text, metadata)
        chunks = self.chunker.split(text, source=source, metadata=dict(metadata or {}))
        previous = await self.store.document_hash(doc_id)
        if previous == content_hash:
            return IngestResult(doc_id, source, "unchanged", chunks)
        vectors = await self.embedder.embed([c.content for c in chunks]) if chunks else []
        for chunk in chunks:
            chunk.metadata["doc_id"] = doc_id
        records = [
            Record(
                id=f"{doc_id}#{c.metadata['chunk_index']}",
                doc_id=doc_id,
                content=c.content,
                vector=v,
                metadata=c.metadata,
                content_hash=content_hash,
            )
            for c, v in zip(chunks, vectors, strict=True)
        ]
        await self.store.replace_document(doc_id, records)
        if not chunks:
            return IngestResult(doc_id, source, "empty", chunks)
        return IngestResult(doc_id, source, "indexed" if previous is None else "replaced", chunks)

    async def ingest(
        self,
        document: str,
        metadata: Mapping[str, Any] | None = None,
        doc_id_prefix: str = "doc",
    ) -> IngestResult:
        """``POST /v1/rag/ingest``: index a text (answer ``len(result.chunks)`` as ``chunks``).

        With ``metadata["source"]`` the document is identified by it, so sending a new
        version of the same source replaces the old one; without, by its content hash (the
        same text twice is stored once).
        """
        meta = dict(metadata or {})
        key = str(meta["source"]) if meta.get("source") else _short_hash(document)
        source = str(meta.pop("source", "")) or f"{doc_id_prefix}:{key}"
        return await self.ingest_text(
            document, doc_id=f"{doc_id_prefix}:{key}", source=source, metadata=meta
        )

    async def delete(self, doc_id: str) -> int:
        """Remove a document's chunks; return how many."""
        return await self.store.delete_document(doc_id)

    # -- retrieval --------------------------------------------------------------------------

    async def search(self, text: str, top_k: int = 5) -> list[Hit]:
        """The ``top_k`` best hits for ``text`` after threshold and reranking."""
        with genai.retrieval(self.name, top_k=top_k) as span:
            vector = await self.embedder.embed_one(text)
            hits = await self.store.search(
                vector, max(self.candidates, top_k), threshold=self.similarity_threshold
            )
            found = await self.reranker.rerank(text, hits, top_k)
            span.set_attribute("astromesh.results", len(found))
            return found

    async def query(self, text: str, top_k: int = 5) -> list[dict[str, Any]]:
        """``POST /v1/rag/query``'s ``results``: ``[{content, metadata, score, ...}]``."""
        return [hit.as_dict() for hit in await self.search(text, top_k)]

    async def close(self) -> None:
        await self.embedder.aclose()
        await self.store.close()


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _fingerprint(doc: RAGPipelineDocument) -> str:
    spec = doc.spec
    return json.dumps(
        {
            "chunking": spec.chunking.model_dump(mode="json"),
            "embeddings": [spec.embeddings.provider, spec.embeddings.model],
        },
        sort_keys=True,
    )


def build_pipeline(
    doc: RAGPipelineDocument,
    *,
    env: Mapping[str, str] | None = None,
    state: StateBackend | None = None,
) -> RAGPipeline:
    """A runnable pipeline for a ``RAGPipeline`` document.

    Args:
        env: environment for API keys (``embeddings.api_key_env``).
        state: the runtime's state backend; a pgvector store without its own connection
            shares the state database when that is PostgreSQL.

    Raises:
        ConfigurationError: a backend cannot be built here (a missing extra, model package,
            endpoint or DSN); the message says what to install or set.
    """
    spec = doc.spec
    embedder = build_embedder(spec.embeddings, env=env)
    dimension = spec.embeddings.dimension or _known_dimension(spec.embeddings.provider, embedder)
    store = build_vector_store(
        spec.vector_store, dimension=dimension, default_dsn=getattr(state, "dsn", None)
    )
    return RAGPipeline(
        doc.name,
        chunker=build_chunker(spec.chunking),
        embedder=embedder,
        store=store,
        reranker=build_reranker(spec.reranking),
        candidates=spec.retrieval.top_k,
        similarity_threshold=spec.retrieval.similarity_threshold,
        fingerprint=_fingerprint(doc),
    )


def _known_dimension(provider: str, embedder: Embedder) -> int | None:
    if provider != "onnx":
        return embedder.dimension
    from astromesh.rag.embeddings.onnx import PACKAGED_MODELS

    packaged = PACKAGED_MODELS.get(embedder.model.lower().removeprefix("sentence-transformers/"))
    return packaged.dimension if packaged else embedder.dimension


class PipelineRegistry:
    """The pipelines of one configuration, each built on first use and then shared.

    ``get`` raises :class:`NotFoundError` (HTTP 404) for an unknown name, with the known
    ones in the message, which is what ``/v1/rag/*`` answers.
    """

    def __init__(
        self,
        documents: Mapping[str, RAGPipelineDocument],
        *,
        env: Mapping[str, str] | None = None,
        state: StateBackend | None = None,
    ) -> None:
        self.documents = dict(documents)
        self.env = env
        self.state = state
        self._built: dict[str, RAGPipeline] = {}
        self._lock = asyncio.Lock()

    def names(self) -> list[str]:
        return sorted(self.documents)

    async def get(self, name: str) -> RAGPipeline:
        if name in self._built:
            return self._built[name]
        doc = self.documents.get(name)
        if doc is None:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(f"RAG pipeline {name!r} not found (known pipelines: {known})")
        async with self._lock:
            if name not in self._built:
                pipeline = build_pipeline(doc, env=self.env, state=self.state)
                await pipeline.store.open()
                self._built[name] = pipeline
        return self._built[name]

    async def close(self) -> None:
        for pipeline in self._built.values():
            await pipeline.close()
        self._built.clear()

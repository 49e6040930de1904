"""Semantic memory: facts and snippets embedded in a vector store, recalled by similarity.

Facts belong to an agent (within its tenant and namespace) and are shared by its sessions:
what an agent learnt about a customer or a product holds in the next conversation too.
Pass ``session_id`` to :meth:`SemanticMemory.remember` to keep a fact private to a session;
recall then sees the agent's shared facts plus that session's own.

A fact's id is the hash of its scope and text, so remembering the same fact twice stores it
once (no duplicate recalls).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.rag.types import Hit, Record
from astromesh.stores.base import SessionKey

if TYPE_CHECKING:
    from astromesh.config.agent import SemanticMemory as SemanticMemoryConfig
    from astromesh.rag.embeddings import Embedder
    from astromesh.rag.vectorstores import VectorStore

COLLECTION = "semantic_memory"
DEFAULT_SQLITE_PATH = Path(".astromesh") / "semantic.db"
DEFAULT_FAISS_PATH = Path(".astromesh") / "semantic.faiss"


def scope_of(key: SessionKey) -> str:
    """The agent-wide scope of ``key`` (tenant, namespace, agent; no session)."""
    return SessionKey(key.agent, "*", key.namespace, key.tenant).as_string()


class SemanticMemory:
    """Remember facts; recall the ones similar to a query.

    Args:
        similarity_threshold: cosine similarity a fact needs to be recalled.
        max_results: most facts recalled into one prompt.
    """

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        *,
        similarity_threshold: float = 0.7,
        max_results: int = 5,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.similarity_threshold = similarity_threshold
        self.max_results = max_results

    async def remember(
        self,
        key: SessionKey,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        session_only: bool = False,
    ) -> str:
        """Store ``text`` as a fact of ``key``'s agent (or only of its session); return its id."""
        scope = key.as_string() if session_only else scope_of(key)
        fact_id = "fact:" + hashlib.sha256(f"{scope}\0{text}".encode()).hexdigest()[:24]
        if await self.store.document_hash(fact_id) == fact_id:
            return fact_id  # already known: nothing to embed or write
        vector = await self.embedder.embed_one(text)
        meta = {**(metadata or {}), "scope": scope, "agent": key.agent}
        await self.store.replace_document(
            fact_id, [Record(fact_id, fact_id, text, vector, meta, content_hash=fact_id)]
        )
        return fact_id

    async def recall(
        self,
        key: SessionKey,
        query: str,
        *,
        max_results: int | None = None,
        threshold: float | None = None,
    ) -> list[Hit]:
        """Facts similar to ``query`` (best first), agent-wide and ``key``'s session's own."""
        vector = await self.embedder.embed_one(query)
        limit = max_results or self.max_results
        cutoff = self.similarity_threshold if threshold is None else threshold
        hits: list[Hit] = []
        for scope in (scope_of(key), key.as_string()):
            hits += await self.store.search(vector, limit, where={"scope": scope}, threshold=cutoff)
        hits.sort(key=lambda h: -h.score)
        return hits[:limit]

    async def list(
        self, key: SessionKey, *, query: str | None = None, top_k: int = 10
    ) -> list[Hit]:
        """``GET /v1/memory/{agent}/semantic``: with a query, the most similar facts (no
        threshold, so the caller sees the scores); without, the agent's facts in order."""
        if query:
            return await self.recall(key, query, max_results=top_k, threshold=0.0)
        return await self.store.list_records(where={"scope": scope_of(key)}, limit=top_k)

    async def forget(self, fact_id: str) -> bool:
        """Delete one fact; whether it existed."""
        return await self.store.delete_document(fact_id) > 0

    async def close(self) -> None:
        await self.embedder.aclose()
        await self.store.close()


def build_semantic_memory(
    config: SemanticMemoryConfig,
    *,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    sqlite_path: str | Path = DEFAULT_SQLITE_PATH,
    faiss_path: str | Path = DEFAULT_FAISS_PATH,
    postgres_dsn: str | None = None,
) -> SemanticMemory:
    """The semantic memory of an agent's ``spec.memory.semantic``.

    Args:
        embedder: defaults to the packaged ONNX all-MiniLM-L6-v2 (no server, no download).
        store: a ready store; otherwise one is built from ``config.backend`` (``sqlite`` at
            ``sqlite_path``, ``faiss`` at ``faiss_path``, ``pgvector`` at ``postgres_dsn``,
            ``chromadb``/``qdrant`` local, or ``memory``), collection ``semantic_memory``.

    Raises:
        ConfigurationError: a backend that cannot be built here (missing DSN or package).
    """
    if embedder is None:
        from astromesh.rag.embeddings.onnx import OnnxEmbedder

        embedder = OnnxEmbedder()
    if store is None:
        store = _store(config.backend, embedder, sqlite_path, faiss_path, postgres_dsn)
    return SemanticMemory(
        embedder,
        store,
        similarity_threshold=config.similarity_threshold,
        max_results=config.max_results,
    )


def _store(
    backend: str,
    embedder: Embedder,
    sqlite_path: str | Path,
    faiss_path: str | Path,
    postgres_dsn: str | None,
) -> VectorStore:
    from astromesh.rag import vectorstores as vs

    if backend == "memory":
        return vs.InMemoryVectorStore()
    if backend == "sqlite":
        return vs.SQLiteVectorStore(sqlite_path, collection=COLLECTION)
    if backend == "faiss":
        from astromesh.rag.vectorstores.faiss_store import FaissVectorStore

        return FaissVectorStore(faiss_path, dimension=embedder.dimension)
    if backend == "pgvector":
        if not postgres_dsn:
            raise ConfigurationError("semantic memory backend 'pgvector' needs a PostgreSQL DSN")
        from astromesh.rag.vectorstores.pgvector import PgVectorStore

        return PgVectorStore(postgres_dsn, collection=COLLECTION, dimension=embedder.dimension)
    from astromesh.rag.vectorstores.external import ChromaVectorStore, QdrantVectorStore

    if backend == "chromadb":
        return ChromaVectorStore(collection=COLLECTION)
    return QdrantVectorStore(collection=COLLECTION, dimension=embedder.dimension)

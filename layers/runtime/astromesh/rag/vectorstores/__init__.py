"""Vector stores: ``pgvector``, ``faiss``, ``chromadb``, ``qdrant`` (pipelines) and the exact
``memory``/``sqlite`` stores (semantic memory, tests, benchmark baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from astromesh.errors import ConfigurationError
from astromesh.rag.vectorstores.base import VectorStore, matches
from astromesh.rag.vectorstores.memory import InMemoryVectorStore, SQLiteVectorStore

if TYPE_CHECKING:
    from astromesh.config.rag import VectorStoreConfig

__all__ = [
    "DEFAULT_FAISS_DIR",
    "InMemoryVectorStore",
    "SQLiteVectorStore",
    "VectorStore",
    "build_vector_store",
    "matches",
]

DEFAULT_FAISS_DIR = Path(".astromesh") / "faiss"
"""Where a faiss pipeline without ``path`` keeps its index (``<collection>.faiss``)."""


def build_vector_store(
    config: VectorStoreConfig,
    *,
    dimension: int | None = None,
    default_dsn: str | None = None,
    api_key: str | None = None,
) -> VectorStore:
    """The store a pipeline's ``spec.vector_store`` names.

    Args:
        dimension: the embedder's vector size when known (creates pgvector tables early).
        default_dsn: the PostgreSQL to use when a pgvector store names no connection (the
            runtime passes its state database's DSN).

    Raises:
        ConfigurationError: no DSN for pgvector, or the backend's client is not installed.
    """
    if config.backend == "faiss":
        from astromesh.rag.vectorstores.faiss_ann import AnnSettings
        from astromesh.rag.vectorstores.faiss_store import FaissVectorStore

        path = config.path or DEFAULT_FAISS_DIR / f"{config.collection}.faiss"
        ann = AnnSettings()
        if config.ann_threshold is not None:
            ann = AnnSettings(threshold=config.ann_threshold or None)
        return FaissVectorStore(path, dimension=dimension, ann=ann)
    if config.backend == "pgvector":
        dsn = config.dsn() or default_dsn
        if not dsn:
            raise ConfigurationError(
                "the pgvector store needs vector_store.connection (a DSN or host/port/...)"
                " or a PostgreSQL state backend to share"
            )
        try:
            from astromesh.rag.vectorstores.pgvector import PgVectorStore
        except ImportError as exc:  # pragma: no cover - the postgres extra is missing
            raise ConfigurationError(
                f"the pgvector store needs the 'postgres' extra (pip install "
                f"'astromesh[postgres]'): {exc}"
            ) from exc
        return PgVectorStore(dsn, collection=config.collection, dimension=dimension)
    from astromesh.rag.vectorstores.external import ChromaVectorStore, QdrantVectorStore

    conn = config.connection if isinstance(config.connection, dict) else {}
    url = config.connection if isinstance(config.connection, str) else conn.get("url")
    if config.backend == "chromadb":
        return ChromaVectorStore(
            collection=config.collection,
            path=conn.get("path"),
            host=conn.get("host"),
            port=int(conn.get("port", 8000)),
        )
    return QdrantVectorStore(
        collection=config.collection,
        url=url or (f"http://{conn['host']}:{conn.get('port', 6333)}" if "host" in conn else None),
        path=conn.get("path"),
        api_key=api_key,
        dimension=dimension,
    )

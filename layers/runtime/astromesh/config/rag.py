"""The ``RAGPipeline`` document: how documents are chunked, embedded, stored and retrieved."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, model_validator

from astromesh.config.base import ConfigDocument, ConfigModel
from astromesh.config.issues import config_error


class ChunkingConfig(ConfigModel):
    """Split documents into overlapping chunks."""

    strategy: Literal["fixed", "recursive", "sentence", "markdown"] = "recursive"
    chunk_size: int = Field(512, gt=0)
    overlap: int = Field(50, ge=0)
    separators: list[str] | None = None

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkingConfig:
        if self.overlap >= self.chunk_size:
            raise config_error(
                f"overlap ({self.overlap}) must be smaller than chunk_size ({self.chunk_size})",
                field="overlap",
            )
        return self


class EmbeddingsConfig(ConfigModel):
    """The embedding model; ``dimension`` must match the vector store's column."""

    provider: Literal["onnx", "openai_compat", "ollama", "hf_tgi"]
    model: str
    endpoint: str | None = None
    api_key_env: str | None = None
    dimension: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)


class VectorStoreConfig(ConfigModel):
    """Where vectors live. ``connection`` is a mapping (host, port, ...) or a DSN string."""

    backend: Literal["pgvector", "faiss", "chromadb", "qdrant"]
    connection: dict[str, Any] | str | None = None
    collection: str = "documents"
    path: str | None = None
    ann_threshold: int | None = Field(None, ge=0)
    """faiss: live vectors from which the index is HNSW instead of exact (default 20000;
    0 keeps it exact at any size). See ``rag/vectorstores/faiss_ann.py``."""

    @model_validator(mode="after")
    def _path_only_for_faiss(self) -> VectorStoreConfig:
        for name in ("path", "ann_threshold"):
            if getattr(self, name) is not None and self.backend != "faiss":
                raise config_error(
                    f"'{name}' is for backend 'faiss', not '{self.backend}'", field=name
                )
        return self

    def dsn(self) -> str | None:
        """A connection string: the string given, ``connection.dsn``, or one built from
        host/port/database/user/password (pgvector)."""
        conn = self.connection
        if conn is None or isinstance(conn, str):
            return conn
        if isinstance(conn.get("dsn"), str):
            return str(conn["dsn"])
        if "host" not in conn:
            return None
        auth = ""
        if conn.get("user"):
            auth = quote(str(conn["user"]), safe="")
            if conn.get("password"):
                auth += ":" + quote(str(conn["password"]), safe="")
            auth += "@"
        port = f":{conn['port']}" if conn.get("port") else ""
        database = f"/{conn['database']}" if conn.get("database") else ""
        return f"postgresql://{auth}{conn['host']}{port}{database}"


class RerankingConfig(ConfigModel):
    """Re-order retrieved chunks before the top ``top_k`` are used."""

    enabled: bool = False
    provider: Literal["cross_encoder", "bm25_rrf", "none"] = "none"
    model: str | None = None
    top_k: int = Field(5, gt=0)


class RetrievalConfig(ConfigModel):
    """How many chunks to fetch and how similar they must be."""

    top_k: int = Field(10, gt=0)
    similarity_threshold: float = Field(0.0, ge=0, le=1)


class RAGPipelineSpec(ConfigModel):
    """``spec`` of a RAGPipeline."""

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embeddings: EmbeddingsConfig
    vector_store: VectorStoreConfig
    reranking: RerankingConfig = Field(default_factory=RerankingConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)


class RAGPipelineDocument(ConfigDocument):
    """``kind: RAGPipeline``."""

    kind: Literal["RAGPipeline"]
    spec: RAGPipelineSpec

"""Chroma and Qdrant through their official clients, when installed (optional).

Neither client is a dependency of Astromesh; a pipeline that names one of them fails at build
time with the pip command when it is missing. Both clients are synchronous here and run in a
worker thread. Metadata is flattened to what both accept (scalars): the full metadata rides
along as JSON in ``_meta``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import uuid
from collections.abc import Sequence
from typing import Any

from astromesh.errors import ConfigurationError
from astromesh.rag.types import Hit, Record, Vector
from astromesh.rag.vectorstores.base import VectorStore, Where, matches


def require_client(module: str, package: str, backend: str) -> None:
    """Raise a :class:`ConfigurationError` naming ``package`` unless ``module`` imports."""
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"the {backend} vector store needs its official client: pip install {package}"
        )


def _flat(record: Record) -> dict[str, Any]:
    return {
        "doc_id": record.doc_id,
        "content_hash": record.content_hash,
        "record_id": record.id,
        "_meta": json.dumps(record.metadata),
    }


class ChromaVectorStore(VectorStore):
    """A Chroma collection (cosine space); local (``path``) or a server (``host``/``port``)."""

    backend = "chromadb"

    def __init__(
        self,
        *,
        collection: str,
        path: str | None = None,
        host: str | None = None,
        port: int = 8000,
    ) -> None:
        require_client("chromadb", "chromadb", "chromadb")
        import chromadb

        client = (
            chromadb.HttpClient(host=host, port=port)
            if host
            else chromadb.PersistentClient(path=path or ".astromesh/chroma")
        )
        self._collection = client.get_or_create_collection(
            collection, metadata={"hnsw:space": "cosine"}
        )

    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        def write() -> None:
            self._collection.delete(where={"doc_id": doc_id})
            if records:
                self._collection.upsert(
                    ids=[r.id for r in records],
                    embeddings=[r.vector for r in records],
                    documents=[r.content for r in records],
                    metadatas=[_flat(r) for r in records],
                )

        await asyncio.to_thread(write)

    async def delete_document(self, doc_id: str) -> int:
        def delete() -> int:
            found = self._collection.get(where={"doc_id": doc_id}, include=[])
            self._collection.delete(where={"doc_id": doc_id})
            return len(found["ids"])

        return int(await asyncio.to_thread(delete))

    async def document_hash(self, doc_id: str) -> str | None:
        def find() -> str | None:
            found = self._collection.get(where={"doc_id": doc_id}, limit=1, include=["metadatas"])
            metas = found.get("metadatas") or []
            return str(metas[0]["content_hash"]) if metas else None

        result: str | None = await asyncio.to_thread(find)
        return result

    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        def query() -> list[Hit]:
            total = self._collection.count()
            if total == 0:
                return []
            found = self._collection.query(
                query_embeddings=[vector],
                n_results=total if where else min(top_k, total),
                include=["documents", "metadatas", "distances"],
            )
            hits = []
            for id_, doc, meta, dist in zip(
                found["ids"][0],
                found["documents"][0],
                found["metadatas"][0],
                found["distances"][0],
                strict=True,
            ):
                metadata = json.loads(meta["_meta"])
                score = 1.0 - float(dist)
                if score >= threshold and matches(metadata, where):
                    hits.append(
                        Hit(str(meta["record_id"] or id_), doc, metadata, score, {"vector": score})
                    )
            return hits[:top_k]

        result: list[Hit] = await asyncio.to_thread(query)
        return result

    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        def listing() -> list[Hit]:
            found = self._collection.get(include=["documents", "metadatas"])
            hits = [
                Hit(str(i), d, json.loads(m["_meta"]), 0.0)
                for i, d, m in zip(
                    found["ids"], found["documents"], found["metadatas"], strict=True
                )
            ]
            return [h for h in hits if matches(h.metadata, where)][offset : offset + limit]

        result: list[Hit] = await asyncio.to_thread(listing)
        return result

    async def count(self) -> int:
        return int(await asyncio.to_thread(self._collection.count))


class QdrantVectorStore(VectorStore):
    """A Qdrant collection (cosine distance); a server (``url``) or local mode (``path``)."""

    backend = "qdrant"

    def __init__(
        self,
        *,
        collection: str,
        url: str | None = None,
        path: str | None = None,
        api_key: str | None = None,
        dimension: int | None = None,
    ) -> None:
        require_client("qdrant_client", "qdrant-client", "qdrant")
        from qdrant_client import QdrantClient

        self._client = (
            QdrantClient(url=url, api_key=api_key)
            if url
            else QdrantClient(path=path or ".astromesh/qdrant")
        )
        self.collection = collection
        self.dimension = dimension

    def _ensure(self, dimension: int) -> None:
        from qdrant_client import models

        if not self._client.collection_exists(self.collection):
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
            )

    def _doc_filter(self, doc_id: str) -> Any:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))]
        )

    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        from qdrant_client import models

        def write() -> None:
            if records:
                self._ensure(len(records[0].vector))
            if not self._client.collection_exists(self.collection):
                return
            self._client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=self._doc_filter(doc_id)),
            )
            if records:
                self._client.upsert(
                    self.collection,
                    points=[
                        models.PointStruct(
                            id=str(uuid.uuid5(uuid.NAMESPACE_URL, r.id)),
                            vector=r.vector,
                            payload={**_flat(r), "content": r.content},
                        )
                        for r in records
                    ],
                )

        await asyncio.to_thread(write)

    async def delete_document(self, doc_id: str) -> int:
        from qdrant_client import models

        def delete() -> int:
            if not self._client.collection_exists(self.collection):
                return 0
            n = self._client.count(self.collection, count_filter=self._doc_filter(doc_id)).count
            self._client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=self._doc_filter(doc_id)),
            )
            return int(n)

        return int(await asyncio.to_thread(delete))

    async def document_hash(self, doc_id: str) -> str | None:
        def find() -> str | None:
            if not self._client.collection_exists(self.collection):
                return None
            points, _ = self._client.scroll(
                self.collection, scroll_filter=self._doc_filter(doc_id), limit=1, with_payload=True
            )
            return str(points[0].payload["content_hash"]) if points else None

        result: str | None = await asyncio.to_thread(find)
        return result

    def _hit(self, point: Any, score: float) -> Hit:
        payload = point.payload
        return Hit(
            payload["record_id"],
            payload["content"],
            json.loads(payload["_meta"]),
            score,
            {"vector": score},
        )

    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        def query() -> list[Hit]:
            if not self._client.collection_exists(self.collection):
                return []
            total = self._client.count(self.collection).count
            points = self._client.query_points(
                self.collection,
                query=vector,
                limit=total if where else top_k,
                with_payload=True,
                score_threshold=threshold,
            ).points
            hits = [self._hit(p, float(p.score)) for p in points]
            return [h for h in hits if matches(h.metadata, where)][:top_k]

        result: list[Hit] = await asyncio.to_thread(query)
        return result

    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        def listing() -> list[Hit]:
            if not self._client.collection_exists(self.collection):
                return []
            points, _ = self._client.scroll(self.collection, limit=10_000, with_payload=True)
            hits = [self._hit(p, 0.0) for p in points]
            return [h for h in hits if matches(h.metadata, where)][offset : offset + limit]

        result: list[Hit] = await asyncio.to_thread(listing)
        return result

    async def count(self) -> int:
        def count() -> int:
            if not self._client.collection_exists(self.collection):
                return 0
            return int(self._client.count(self.collection).count)

        return int(await asyncio.to_thread(count))

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

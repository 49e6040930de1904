"""FAISS, persisted to a file: the embedded default for RAG pipelines (and Lambda, via S3).

Below ``ann_threshold`` live vectors (20k by default) the index is exact inner product
(``IndexFlatIP``; vectors are unit length, so inner product is cosine); from there it is an
HNSW graph, ~0.2 ms per query at 100k x 384 against 5-15 ms exact, with recall@10 ~0.99
(``faiss_ann.py`` has the settings, the figures, and how deletes work on a graph that cannot
remove: tombstones and rebuilds). Either sits under an ``IndexIDMap2``, so a document's
vectors are found by id when it changes.

Two files make a store: ``<path>`` (the FAISS index) and ``<path>.meta.json`` (content,
metadata and hash of each vector id). Both are written to a temporary name and renamed, so
a crash never leaves a half-written index, and every change is saved before it returns.

In Lambda the index lives in S3: :func:`load_from_s3` copies it into ``/tmp`` once per warm
instance (skipped when the ETag is unchanged) and :func:`save_to_s3` puts it back after
ingestion. boto3 is imported only there.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from astromesh.errors import ConfigurationError
from astromesh.rag.types import Hit, Record, Vector
from astromesh.rag.vectorstores.base import VectorStore, Where, matches
from astromesh.rag.vectorstores.faiss_ann import (
    AnnSettings,
    hnsw_of,
    new_index,
    rebuild,
    set_ef_search,
    wants_rebuild,
)

if TYPE_CHECKING:
    import faiss
    import numpy as np

META_SUFFIX = ".meta.json"


def _require_faiss() -> None:
    missing = [name for name in ("numpy", "faiss") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"the faiss vector store needs {', '.join(missing)}: pip install 'astromesh[ml]'"
        )


class FaissVectorStore(VectorStore):
    """Cosine search over a FAISS index file with a JSON sidecar: exact, then HNSW past
    ``ann.threshold`` live vectors.

    Args:
        path: the index file (created with its folder on the first write).
        dimension: vector size; taken from the first vectors written when ``None``.
        ann: when and how to build the approximate index (:class:`AnnSettings`).
    """

    backend = "faiss"

    def __init__(
        self, path: str | Path, *, dimension: int | None = None, ann: AnnSettings | None = None
    ) -> None:
        _require_faiss()
        self.path = Path(path)
        self.meta_path = self.path.with_name(self.path.name + META_SUFFIX)
        self.dimension = dimension
        self.ann = ann or AnnSettings()
        self._index: faiss.IndexIDMap2 | None = None
        self._records: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._loaded = False
        self._lock = threading.Lock()

    # -- persistence ------------------------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        import faiss

        if self.path.exists() and self.meta_path.exists():
            self._index = faiss.read_index(str(self.path))
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            self._records = {int(k): v for k, v in meta["records"].items()}
            self._next_id = int(meta["next_id"])
            self.dimension = int(self._index.d)
            set_ef_search(self._index, self.ann.ef_search)
        self._loaded = True

    @property
    def approximate(self) -> bool:
        """Whether searches go through the HNSW graph (the store passed the threshold)."""
        with self._lock:
            self._load()
            return self._index is not None and hnsw_of(self._index) is not None

    def _ensure_index(self, dimension: int) -> faiss.IndexIDMap2:
        if self._index is None:
            if self.dimension is not None and dimension != self.dimension:
                raise ConfigurationError(
                    f"faiss store {self.path} expects {self.dimension}-d vectors, got {dimension}"
                )
            self.dimension = dimension
            self._index = new_index(dimension, ann=False, settings=self.ann)
        elif self._index.d != dimension:
            raise ConfigurationError(
                f"faiss index {self.path} holds {self._index.d}-d vectors, got {dimension}-d "
                "(another embedding model wrote it: use another path or re-ingest)"
            )
        return self._index

    def _save(self) -> None:
        import faiss

        if self._index is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp_index = self.path.with_name(self.path.name + ".tmp")
        tmp_meta = self.meta_path.with_name(self.meta_path.name + ".tmp")
        faiss.write_index(self._index, str(tmp_index))
        tmp_meta.write_text(
            json.dumps({"next_id": self._next_id, "records": self._records}), encoding="utf-8"
        )
        os.replace(tmp_index, self.path)
        os.replace(tmp_meta, self.meta_path)

    async def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                self._load()
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def open(self) -> None:
        await self._run(lambda: None)

    # -- writes -----------------------------------------------------------------------------

    def _ids_of(self, doc_id: str) -> list[int]:
        return [key for key, r in self._records.items() if r["doc_id"] == doc_id]

    def _remove(self, ids: list[int]) -> None:
        """Drop ``ids``' records; an exact index drops their vectors too, an HNSW graph
        keeps them as tombstones that searches skip (see :meth:`_maintain`)."""
        import numpy as np

        if ids and self._index is not None and hnsw_of(self._index) is None:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))
        for key in ids:
            del self._records[key]

    def _maintain(self) -> None:
        """Switch to HNSW at the threshold, and rebuild a graph heavy with tombstones."""
        if self._index is not None and wants_rebuild(self._index, len(self._records), self.ann):
            self._index = rebuild(self._index, self._records.keys(), self.ann)

    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        def write() -> None:
            import numpy as np

            self._remove(self._ids_of(doc_id))
            if records:
                matrix = np.asarray([r.vector for r in records], dtype=np.float32)
                index = self._ensure_index(matrix.shape[1])
                ids = np.arange(self._next_id, self._next_id + len(records), dtype=np.int64)
                index.add_with_ids(matrix, ids)
                for key, r in zip(ids.tolist(), records, strict=True):
                    self._records[key] = {
                        "id": r.id,
                        "doc_id": r.doc_id,
                        "content": r.content,
                        "metadata": r.metadata,
                        "hash": r.content_hash,
                    }
                self._next_id += len(records)
            self._maintain()
            self._save()

        await self._run(write)

    async def delete_document(self, doc_id: str) -> int:
        def delete() -> int:
            ids = self._ids_of(doc_id)
            if ids:
                self._remove(ids)
                self._maintain()
                self._save()
            return len(ids)

        return int(await self._run(delete))

    async def document_hash(self, doc_id: str) -> str | None:
        def find() -> str | None:
            return next(
                (str(r["hash"]) for r in self._records.values() if r["doc_id"] == doc_id), None
            )

        result: str | None = await self._run(find)
        return result

    # -- reads ------------------------------------------------------------------------------

    def _hit(self, key: int, score: float) -> Hit:
        r = self._records[key]
        return Hit(r["id"], r["content"], dict(r["metadata"]), score, {"vector": score})

    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        def query() -> list[Hit]:
            import numpy as np

            index = self._index
            if index is None or not self._records or top_k <= 0:
                return []
            q = np.asarray([vector], dtype=np.float32)
            # Ask for more than top_k when some results may be dropped (a filter, tombstones),
            # widen once, then scan what matches exactly: a selective filter on a graph.
            dead = index.ntotal - len(self._records)
            fetch = min(index.ntotal, top_k * (10 if where is not None else 2 if dead else 1))
            for _ in range(2):
                hits, exhausted = self._collect(index, q, fetch, where, threshold)
                if len(hits) >= top_k or exhausted or fetch >= index.ntotal:
                    return hits[:top_k]
                fetch = min(index.ntotal, fetch * 8)
            if hnsw_of(index) is None:
                return self._collect(index, q, index.ntotal, where, threshold)[0][:top_k]
            return self._scan(index, q, top_k, where, threshold)

        result: list[Hit] = await self._run(query)
        return result

    def _collect(
        self,
        index: faiss.IndexIDMap2,
        q: np.ndarray,
        fetch: int,
        where: Where | None,
        threshold: float,
    ) -> tuple[list[Hit], bool]:
        """The live, matching hits among ``index``'s best ``fetch``, and whether the
        results already fell below ``threshold`` (asking for more cannot add any)."""
        graph = hnsw_of(index)
        if graph is not None:
            graph.hnsw.efSearch = max(self.ann.ef_search, fetch)
        scores, ids = index.search(q, fetch)
        hits = []
        for score, key in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
            record = self._records.get(key)
            if record is not None and score >= threshold and matches(record["metadata"], where):
                hits.append(self._hit(key, score))
        found = [s for s, k in zip(scores[0], ids[0], strict=True) if k >= 0]
        return hits, bool(found) and float(found[-1]) < threshold

    def _scan(
        self,
        index: faiss.IndexIDMap2,
        q: np.ndarray,
        top_k: int,
        where: Where | None,
        threshold: float,
    ) -> list[Hit]:
        """Exact search over the live records that match ``where``, their vectors read
        back from the index by id."""
        import numpy as np

        keys = [k for k, r in self._records.items() if matches(r["metadata"], where)]
        if not keys:
            return []
        vectors = np.vstack([index.reconstruct(k) for k in keys])
        scores = vectors @ q[0]
        order = np.argsort(-scores)[:top_k]
        return [
            self._hit(keys[i], float(scores[i])) for i in order.tolist() if scores[i] >= threshold
        ]

    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        def listing() -> list[Hit]:
            keys = [
                k for k in sorted(self._records) if matches(self._records[k]["metadata"], where)
            ]
            return [self._hit(k, 0.0) for k in keys[offset : offset + limit]]

        result: list[Hit] = await self._run(listing)
        return result

    async def count(self) -> int:
        return int(await self._run(lambda: len(self._records)))


# -- S3 (Lambda) ----------------------------------------------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ConfigurationError(f"not an s3://bucket/key URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


def load_from_s3(uri: str, local_path: str | Path, *, client: Any = None) -> bool:
    """Copy the index at ``uri`` (and its ``.meta.json``) to ``local_path``.

    Skips the download when the local copy came from the same S3 version (ETag recorded in
    ``<local_path>.etag``): a warm Lambda instance pays for the copy once. Returns whether an
    index exists in S3 (a fresh pipeline has none yet; the store then starts empty).
    """
    if client is None:
        import boto3

        client = boto3.client("s3")
    bucket, key = _split_s3(uri)
    local = Path(local_path)
    etag_file = local.with_name(local.name + ".etag")
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    etag = str(head["ETag"])
    if local.exists() and etag_file.exists() and etag_file.read_text() == etag:
        return True
    local.parent.mkdir(parents=True, exist_ok=True)
    client.download_file(bucket, key, str(local))
    client.download_file(bucket, key + META_SUFFIX, str(local) + META_SUFFIX)
    etag_file.write_text(etag)
    return True


def save_to_s3(local_path: str | Path, uri: str, *, client: Any = None) -> None:
    """Upload the index at ``local_path`` (sidecar first, index last) to ``uri``.

    The index is uploaded last because readers decide by its ETag whether to download; they
    then find the matching sidecar already in place.
    """
    if client is None:
        import boto3

        client = boto3.client("s3")
    bucket, key = _split_s3(uri)
    local = Path(local_path)
    client.upload_file(str(local) + META_SUFFIX, bucket, key + META_SUFFIX)
    client.upload_file(str(local), bucket, key)
    head = client.head_object(Bucket=bucket, Key=key)
    local.with_name(local.name + ".etag").write_text(str(head["ETag"]))

"""Vector stores: one conformance suite over memory, SQLite, FAISS and pgvector (real
PostgreSQL), plus FAISS persistence, the S3 round trip and the optional clients' errors."""

from __future__ import annotations

import math

import boto3
import pytest
from moto import mock_aws

from astromesh.config.rag import VectorStoreConfig
from astromesh.errors import ConfigurationError
from astromesh.rag.types import Record
from astromesh.rag.vectorstores import InMemoryVectorStore, SQLiteVectorStore, build_vector_store
from astromesh.rag.vectorstores.faiss_store import FaissVectorStore, load_from_s3, save_to_s3


def unit(*xs):
    norm = math.sqrt(sum(x * x for x in xs))
    return [x / norm for x in xs]


def records(doc_id, vectors, content_hash="h1", **meta):
    return [
        Record(f"{doc_id}#{i}", doc_id, f"{doc_id} chunk {i}", v, {"n": i, **meta}, content_hash)
        for i, v in enumerate(vectors)
    ]


@pytest.fixture(params=["memory", "sqlite", "faiss", "pgvector"])
async def store(request, tmp_path):
    if request.param == "memory":
        s = InMemoryVectorStore()
    elif request.param == "sqlite":
        s = SQLiteVectorStore(tmp_path / "v.db")
    elif request.param == "faiss":
        s = FaissVectorStore(tmp_path / "v.faiss")
    else:
        from astromesh.rag.vectorstores.pgvector import PgVectorStore

        s = PgVectorStore(request.getfixturevalue("postgres_schema"), collection="t", dimension=3)
    await s.open()
    yield s
    await s.close()


async def test_search_orders_by_cosine_and_applies_threshold_and_filters(store):
    await store.replace_document("a", records("a", [unit(1, 0, 0), unit(1, 1, 0)], tag="x"))
    await store.replace_document("b", records("b", [unit(0, 1, 0), unit(0, 0, 1)], tag="y"))
    hits = await store.search(unit(1, 0.1, 0), 3)
    assert [h.id for h in hits] == ["a#0", "a#1", "b#0"]
    assert hits[0].score == pytest.approx(0.995, abs=1e-3)
    assert hits[0].metadata["tag"] == "x" and hits[0].content == "a chunk 0"
    assert [h.id for h in await store.search(unit(1, 0.1, 0), 5, threshold=0.5)] == ["a#0", "a#1"]
    filtered = await store.search(unit(1, 0, 0), 5, where={"tag": "y"})
    assert sorted(h.id for h in filtered) == ["b#0", "b#1"]
    assert await store.count() == 4


async def test_replace_delete_hash_and_list(store):
    await store.replace_document("a", records("a", [unit(1, 0, 0), unit(0, 1, 0)]))
    assert await store.document_hash("a") == "h1"
    await store.replace_document("a", records("a", [unit(0, 0, 1)], content_hash="h2"))
    assert await store.document_hash("a") == "h2"
    assert [h.id for h in await store.list_records()] == ["a#0"]
    assert await store.delete_document("a") == 1
    assert await store.document_hash("a") is None
    assert await store.search(unit(1, 0, 0), 3) == []


async def test_faiss_persists_across_instances(tmp_path):
    path = tmp_path / "idx" / "kb.faiss"
    first = FaissVectorStore(path)
    await first.replace_document("a", records("a", [unit(1, 0, 0), unit(0, 1, 0)]))
    await first.replace_document("b", records("b", [unit(0, 0, 1)]))
    await first.delete_document("a")
    second = FaissVectorStore(path)
    hits = await second.search(unit(0, 0, 1), 5)
    assert [(h.id, h.content) for h in hits] == [("b#0", "b chunk 0")]
    assert await second.document_hash("b") == "h1" and await second.count() == 1
    with pytest.raises(ConfigurationError, match="holds 3-d vectors"):
        await second.replace_document("c", records("c", [unit(1, 0)]))


def test_faiss_s3_round_trip(tmp_path):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="indexes")
        uri = "s3://indexes/kb/index.faiss"
        assert load_from_s3(uri, tmp_path / "empty.faiss", client=s3) is False
        source = FaissVectorStore(tmp_path / "src.faiss")
        import asyncio

        asyncio.run(source.replace_document("a", records("a", [unit(1, 0, 0)])))
        save_to_s3(tmp_path / "src.faiss", uri, client=s3)
        local = tmp_path / "tmp" / "index.faiss"
        assert load_from_s3(uri, local, client=s3) is True
        mtime = local.stat().st_mtime_ns
        assert load_from_s3(uri, local, client=s3) is True  # same ETag: no second download
        assert local.stat().st_mtime_ns == mtime
        hits = asyncio.run(FaissVectorStore(local).search(unit(1, 0, 0), 1))
        assert hits[0].id == "a#0"


async def test_pgvector_uses_an_hnsw_index_and_checks_dimension(postgres_schema):
    import psycopg

    from astromesh.rag.vectorstores.pgvector import (
        HNSW_EF_CONSTRUCTION,
        HNSW_EF_SEARCH,
        HNSW_M,
        PgVectorStore,
    )

    store = PgVectorStore(postgres_schema, collection="Docs-2", dimension=3)
    await store.replace_document("a", records("a", [unit(1, 0, 0)]))
    with psycopg.connect(postgres_schema) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (store.table,)
        ).fetchall()
    hnsw = next(d for (d,) in indexes if "hnsw" in d)
    assert "vector_cosine_ops" in hnsw
    # the build settings bench/rag.py measured (pgvector's own default is ef_construction 64)
    assert f"m='{HNSW_M}'" in hnsw and f"ef_construction='{HNSW_EF_CONSTRUCTION}'" in hnsw
    assert store.ef_search == HNSW_EF_SEARCH
    await store.close()
    other = PgVectorStore(postgres_schema, collection="Docs-2", dimension=4)
    with pytest.raises(ConfigurationError, match="holds 3-d vectors"):
        await other.open()
    await other.close()


@pytest.mark.parametrize(
    ("backend", "package"), [("chromadb", "chromadb"), ("qdrant", "qdrant-client")]
)
def test_optional_clients_fail_clearly_when_missing(backend, package):
    import importlib.util

    if importlib.util.find_spec("chromadb" if backend == "chromadb" else "qdrant_client"):
        pytest.skip(f"{package} is installed here")
    with pytest.raises(ConfigurationError, match=f"pip install {package}"):
        build_vector_store(VectorStoreConfig(backend=backend))


def test_pgvector_needs_a_dsn():
    with pytest.raises(ConfigurationError, match=r"needs vector_store\.connection"):
        build_vector_store(VectorStoreConfig(backend="pgvector"))

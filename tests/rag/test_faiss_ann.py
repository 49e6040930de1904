"""The FAISS store past its ANN threshold: HNSW recall on a clustered set, exact results below
the threshold, deletes and upserts as tombstones with rebuilds, filters, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from astromesh.config.rag import VectorStoreConfig
from astromesh.rag.types import Record
from astromesh.rag.vectorstores import build_vector_store
from astromesh.rag.vectorstores.faiss_ann import AnnSettings
from astromesh.rag.vectorstores.faiss_store import FaissVectorStore

DIM = 48
PER_DOC = 100


def clustered(n: int, seed: int = 5) -> np.ndarray:
    """Unit vectors around 40 centres: neighbourhoods like sentence embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM))
    points = centres[rng.integers(0, 40, n)] + 0.35 * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def doc(j: int, vectors: np.ndarray, content_hash: str = "h") -> list[Record]:
    return [
        Record(
            f"{j}:{i}", f"d{j}", f"doc {j} #{i}", v.tolist(), {"doc": j, "odd": j % 2}, content_hash
        )
        for i, v in enumerate(vectors)
    ]


async def fill(store: FaissVectorStore, data: np.ndarray) -> None:
    for j in range(len(data) // PER_DOC):
        await store.replace_document(f"d{j}", doc(j, data[j * PER_DOC : (j + 1) * PER_DOC]))


def exact_ids(data: np.ndarray, q: np.ndarray, k: int = 10) -> list[str]:
    order = np.argsort(-(data @ q))[:k]
    return [f"{i // PER_DOC}:{i % PER_DOC}" for i in order.tolist()]


async def recall(store: FaissVectorStore, data: np.ndarray, queries: np.ndarray) -> float:
    shares = []
    for q in queries:
        found = {h.id for h in await store.search(q.tolist(), 10)}
        shares.append(len(found & set(exact_ids(data, q))) / 10)
    return float(np.mean(shares))


SETTINGS = AnnSettings(threshold=1000, m=16, ef_construction=64, ef_search=48)


async def test_above_threshold_hnsw_finds_the_true_neighbours(tmp_path):
    vectors = clustered(3050)
    data, queries = vectors[:3000], vectors[3000:]
    store = FaissVectorStore(tmp_path / "kb.faiss", ann=SETTINGS)
    await fill(store, data[:900])
    assert not store.approximate
    await fill(store, data)  # rewrites d0..d8 (same vectors) and adds the rest
    assert store.approximate and await store.count() == 3000
    assert await recall(store, data, queries) >= 0.95


async def test_below_threshold_results_are_exact(tmp_path):
    vectors = clustered(850)
    data, queries = vectors[:800], vectors[800:]
    store = FaissVectorStore(tmp_path / "kb.faiss", ann=SETTINGS)
    await fill(store, data)
    assert not store.approximate
    for q in queries:
        hits = await store.search(q.tolist(), 10)
        assert [h.id for h in hits] == exact_ids(data, q)
        assert hits[0].score == pytest.approx(float(np.max(data @ q)), abs=1e-5)


async def test_deletes_upserts_and_filters_on_the_ann_path(tmp_path):
    data = clustered(2000)
    store = FaissVectorStore(tmp_path / "kb.faiss", ann=SETTINGS)
    await fill(store, data)
    assert store.approximate
    probe = data[5]  # a vector of d0

    # Delete: d0's vectors stay in the graph as tombstones, never returned.
    assert await store.delete_document("d0") == PER_DOC
    hits = await store.search(probe.tolist(), 10)
    assert len(hits) == 10 and not any(h.id.startswith("0:") for h in hits)
    assert await store.document_hash("d0") is None and await store.count() == 1900

    # Upsert: d1 now holds d0's old vectors; the new ones are found, its old ones are not.
    await store.replace_document("d1", doc(1, data[:PER_DOC], content_hash="h2"))
    hits = await store.search(probe.tolist(), 1)
    assert hits[0].id == "1:5" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    old = await store.search(data[PER_DOC + 7].tolist(), 20)
    assert all(h.content != "doc 1 #7" or h.score < 0.999 for h in old)
    assert await store.document_hash("d1") == "h2"

    # Filters: a broad one and one so narrow the graph's first answers hold none of it.
    odd = await store.search(probe.tolist(), 10, where={"odd": 1})
    assert len(odd) == 10 and all(h.metadata["odd"] == 1 for h in odd)
    narrow = await store.search(probe.tolist(), 5, where={"doc": 19})
    rows = data[19 * PER_DOC : 20 * PER_DOC]
    assert [h.id for h in narrow] == [f"19:{i}" for i in np.argsort(-(rows @ probe))[:5]]


async def test_tombstones_trigger_a_rebuild_and_small_stores_go_back_to_exact(tmp_path):
    data = clustered(2000)
    store = FaissVectorStore(tmp_path / "kb.faiss", ann=SETTINGS)
    await fill(store, data)
    for j in range(4):  # 400 of 2000: below the 20 % that triggers a rebuild
        await store.delete_document(f"d{j}")
    assert store._index.ntotal == 2000 and store.approximate
    await store.delete_document("d4")  # 500 of 2000 dead: rebuilt from the 1500 live
    assert store._index.ntotal == 1500 and store.approximate
    for j in range(5, 12):  # 700 more dead of 1500: rebuilt, 800 live is below the threshold
        await store.delete_document(f"d{j}")
    assert not store.approximate and store._index.ntotal == 800
    q = data[1500]
    live = data[1200:]
    expected = [
        f"{(1200 + i) // PER_DOC}:{(1200 + i) % PER_DOC}" for i in np.argsort(-(live @ q))[:10]
    ]
    assert [h.id for h in await store.search(q.tolist(), 10)] == expected


async def test_ann_index_persists_with_its_tombstones(tmp_path):
    data = clustered(1500)
    path = tmp_path / "kb.faiss"
    first = FaissVectorStore(path, ann=SETTINGS)
    await fill(first, data)
    await first.delete_document("d3")
    q = data[310]  # in the deleted document
    before = [(h.id, round(h.score, 5)) for h in await first.search(q.tolist(), 10)]
    second = FaissVectorStore(path, ann=SETTINGS)
    assert second.approximate and await second.count() == 1400
    after = [(h.id, round(h.score, 5)) for h in await second.search(q.tolist(), 10)]
    assert after == before and not any(i.startswith("3:") for i, _ in after)
    assert await second.document_hash("d3") is None


def test_threshold_is_configured_per_pipeline(tmp_path):
    config = VectorStoreConfig(backend="faiss", path=str(tmp_path / "a.faiss"), ann_threshold=0)
    store = build_vector_store(config)
    assert isinstance(store, FaissVectorStore) and store.ann.threshold is None
    default = build_vector_store(VectorStoreConfig(backend="faiss", path=str(tmp_path / "b")))
    assert default.ann == AnnSettings()
    with pytest.raises(ValidationError, match="'ann_threshold' is for backend 'faiss'"):
        VectorStoreConfig(backend="pgvector", ann_threshold=5)

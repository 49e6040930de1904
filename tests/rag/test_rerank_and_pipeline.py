"""Hybrid reranking, the pipeline's query shape, idempotent ingestion and retrieval quality."""

from __future__ import annotations

import importlib.util

import pytest

from astromesh.config import load_text
from astromesh.errors import ConfigurationError, NotFoundError
from astromesh.rag import PipelineRegistry, RAGPipeline, build_pipeline, ingest_paths
from astromesh.rag.chunking import MarkdownChunker
from astromesh.rag.ingest import html_to_text
from astromesh.rag.rerank import HybridBM25Reranker, bm25_scores, reciprocal_rank_fusion
from astromesh.rag.rerank.bm25 import _bm25s_scores, tokenize
from astromesh.rag.rerank.cross_encoder import CrossEncoderReranker
from astromesh.rag.types import Hit
from astromesh.rag.vectorstores import InMemoryVectorStore


def test_bm25_matches_lucene_formula_and_bm25s():
    docs = [["the", "cat", "sat"], ["dog", "barks"], ["cat", "and", "dog"]]
    scores = bm25_scores(["cat", "dog"], docs)
    assert scores[2] == pytest.approx(0.35598, abs=1e-4)
    assert scores[2] > scores[1] > scores[0] > 0
    if importlib.util.find_spec("bm25s"):
        assert _bm25s_scores(["cat", "dog"], docs) == pytest.approx(scores, abs=1e-5)


def test_rrf():
    fused = reciprocal_rank_fusion([[0, 1, 2], [2, 0]], k=60)
    assert fused[0] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[0] > fused[2] > fused[1]


async def test_hybrid_rerank_lifts_exact_token_matches():
    hits = [
        Hit("a", "General notes about configuring the product.", {}, 0.80, {"vector": 0.80}),
        Hit("b", "Troubleshooting overview and common problems.", {}, 0.78, {"vector": 0.78}),
        Hit("c", "Error E4012 means the licence file expired.", {}, 0.60, {"vector": 0.60}),
    ]
    reranked = await HybridBM25Reranker().rerank("what does error E4012 mean", hits, top_k=3)
    assert [h.id for h in reranked] == ["c", "a", "b"]
    assert reranked[0].scores["bm25"] > 0 and reranked[0].scores["vector"] == 0.60
    # Without lexical evidence the vector order stands.
    same = await HybridBM25Reranker().rerank("zzz", hits, top_k=2)
    assert [h.id for h in same] == ["a", "b"]
    assert tokenize("The Cat, the DOG!") == ["cat", "dog"]


def test_cross_encoder_says_no_model_ships(tmp_path):
    with pytest.raises(ConfigurationError, match="No cross-encoder ships"):
        CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L-6-v2")
    with pytest.raises(ConfigurationError, match=r"has no model\.onnx"):
        CrossEncoderReranker(str(tmp_path))


def test_html_to_text_keeps_structure():
    html = (
        "<html><head><title>x</title><style>p{}</style></head><body><h1>Guide</h1>"
        "<p>Hello &amp; welcome.</p><script>evil()</script><ul><li>one</li><li>two</li></ul>"
        "</body></html>"
    )
    assert html_to_text(html) == "# Guide\n\nHello & welcome.\n\none\n\ntwo"


@pytest.fixture
def pipeline(counting_embedder) -> RAGPipeline:
    return RAGPipeline(
        "kb",
        chunker=MarkdownChunker(chunk_size=200, overlap=0),
        embedder=counting_embedder,
        store=InMemoryVectorStore(),
        candidates=10,
        fingerprint="v1",
    )


async def test_ingest_is_idempotent_and_replaces_changed_documents(pipeline, tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\nalpha text\n# B\nbeta text\n")
    (folder / "sub" / "b.txt").write_text("gamma text")
    (folder / ".hidden.md").write_text("ignored")
    (folder / "c.html").write_text("<h2>Delta</h2><p>delta text</p>")
    first = await ingest_paths(pipeline, [folder])
    assert [(f.status, f.chunks) for f in first.files] == [
        ("indexed", 2),
        ("indexed", 1),
        ("indexed", 1),
    ]
    embedded = pipeline.embedder.embedded
    again = await ingest_paths(pipeline, [folder])
    assert {f.status for f in again.files} == {"unchanged"}
    assert pipeline.embedder.embedded == embedded  # nothing embedded, nothing written
    (folder / "a.md").write_text("# A\nalpha text, revised\n")
    third = await ingest_paths(pipeline, [folder])
    assert [f.status for f in third.files] == ["replaced", "unchanged", "unchanged"]
    assert await pipeline.store.count() == 3  # a.md now has one chunk, the old two are gone
    results = await pipeline.query("alpha revised", top_k=1)
    assert results[0]["content"] == "# A\nalpha text, revised"
    assert set(results[0]) >= {"content", "metadata", "score"}
    assert results[0]["metadata"]["source"].endswith("a.md")


async def test_ingest_reports_unsupported_and_missing_files(pipeline, tmp_path):
    (tmp_path / "x.docx").write_text("?")
    report = await ingest_paths(pipeline, [tmp_path / "x.docx", tmp_path / "nope.md"])
    assert [f.status for f in report.files] == ["skipped", "failed"]
    assert "unsupported file type" in (report.files[0].detail or "") and not report.ok


async def test_api_ingest_shape_and_identity(pipeline):
    result = await pipeline.ingest("# T\nsome text", {"source": "faq"}, doc_id_prefix="kb")
    assert result.doc_id == "kb:faq" and result.status == "indexed" and len(result.chunks) == 1
    assert (await pipeline.ingest("# T\nsome text", {"source": "faq"}, "kb")).status == "unchanged"
    assert (await pipeline.ingest("# T\nnew text", {"source": "faq"}, "kb")).status == "replaced"
    anonymous = await pipeline.ingest("free text")
    assert anonymous.doc_id.startswith("doc:") and anonymous.written


CORPUS = {
    "billing.md": "# Billing\nInvoices are sent on the first day of each month by email. "
    "You can pay by credit card or bank transfer.",
    "refunds.md": "# Refunds\nA refund is possible within 30 days of purchase. Contact support "
    "with your order number to get your money back.",
    "shipping.md": "# Shipping\nOrders ship from our warehouse in Rotterdam. Delivery inside "
    "the EU takes two to four business days.",
    "security.md": "# Security\nPasswords must have at least twelve characters. Two-factor "
    "authentication is available with an authenticator app.",
    "api.md": "# API limits\nThe REST API allows 600 requests per minute per key. Exceeding "
    "it returns HTTP 429 Too Many Requests.",
    "support.md": "# Support hours\nThe help desk answers phone calls Monday to Friday from "
    "9:00 to 17:00 CET.",
}
QUESTIONS = {
    "How can I get my money back?": "refunds.md",
    "When do I receive my invoice?": "billing.md",
    "How long does delivery take to Germany?": "shipping.md",
    "How long must my password be?": "security.md",
    "What happens if I send too many API calls?": "api.md",
    "When can I call the help desk?": "support.md",
    "Can I pay with a credit card?": "billing.md",
    "Where are orders shipped from?": "shipping.md",
}


@pytest.mark.parametrize("reranking", ["none", "bm25_rrf"])
async def test_retrieval_recall_on_a_small_corpus(tmp_path, reranking):
    for name, text in CORPUS.items():
        (tmp_path / name).write_text(text)
    doc = load_text(
        f"""
apiVersion: astromesh/v1
kind: RAGPipeline
metadata: {{name: kb}}
spec:
  chunking: {{strategy: recursive, chunk_size: 300, overlap: 30}}
  embeddings: {{provider: onnx, model: all-MiniLM-L6-v2}}
  vector_store: {{backend: faiss, path: {tmp_path / "index.faiss"}}}
  reranking: {{provider: {reranking}}}
  retrieval: {{top_k: 6}}
"""
    ).rag_pipelines["kb"]
    pipeline = build_pipeline(doc)
    await ingest_paths(pipeline, sorted(tmp_path.glob("*.md")))
    hits_at_1 = hits_at_2 = 0
    for question, answer in QUESTIONS.items():
        sources = [r["metadata"]["source"] for r in await pipeline.query(question, top_k=2)]
        hits_at_1 += sources[0].endswith(answer)
        hits_at_2 += any(s.endswith(answer) for s in sources)
    await pipeline.close()
    assert hits_at_2 == len(QUESTIONS)  # recall@2 = 1.0
    assert hits_at_1 >= len(QUESTIONS) - 1


async def test_registry_builds_once_and_404s_unknown_names(tmp_path):
    docs = load_text(
        f"""
apiVersion: astromesh/v1
kind: RAGPipeline
metadata: {{name: kb}}
spec:
  embeddings: {{provider: onnx, model: all-MiniLM-L6-v2}}
  vector_store: {{backend: faiss, path: {tmp_path / "i.faiss"}}}
"""
    ).rag_pipelines
    registry = PipelineRegistry(docs)
    assert await registry.get("kb") is await registry.get("kb")
    with pytest.raises(NotFoundError, match="known pipelines: kb"):
        await registry.get("nope")
    await registry.close()

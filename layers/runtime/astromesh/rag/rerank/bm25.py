"""Model-free hybrid reranking: BM25 over the candidates, fused with the vector ranking by
reciprocal rank fusion (RRF). Always available; no model, no download.

Embeddings miss exact tokens (product codes, names, error numbers) that lexical scoring
catches, and BM25 misses paraphrases that embeddings catch; RRF combines the two *rankings*
(``sum 1 / (k + rank)``), which needs no calibration between their incomparable scores.

BM25 is Lucene's variant (``idf = ln(1 + (N - df + .5) / (df + .5))``, ``k1 = 1.5``,
``b = 0.75``), computed over the candidate set. The ``bm25s`` package scores it when installed
(the ``ml`` extra); the small implementation here gives the same numbers without it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence

from astromesh.rag.rerank.base import Reranker
from astromesh.rag.types import Hit

RRF_K = 60
"""The constant of Cormack et al. (2009); it damps the weight of the very first ranks."""

_TOKEN = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    ]
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without English stopwords."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def bm25_scores(
    query: Sequence[str], documents: Sequence[Sequence[str]], *, k1: float = 1.5, b: float = 0.75
) -> list[float]:
    """BM25 (Lucene variant) of each tokenised document for the tokenised query."""
    if not documents:
        return []
    n = len(documents)
    avgdl = sum(len(d) for d in documents) / n or 1.0
    df: Counter[str] = Counter()
    for doc in documents:
        df.update(set(doc))
    scores = []
    terms = set(query)
    for doc in documents:
        tf = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / avgdl)
        score = 0.0
        for term in terms:
            if tf[term]:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + norm)
        scores.append(score)
    return scores


def _bm25s_scores(query: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
    import bm25s

    # bm25s sets its own logger to DEBUG at import, so every query printed "Building index
    # from tokens" through the CLI's WARNING handler; keep it to warnings like the rest.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    # bm25s needs at least one token per document; a placeholder that no query contains.
    retriever.index([list(d) or ["\x00"] for d in documents], show_progress=False)
    return [float(s) for s in retriever.get_scores(list(query))]


def lexical_scores(query: str, texts: Sequence[str]) -> list[float]:
    """BM25 of each text for ``query``, with ``bm25s`` when installed."""
    q = tokenize(query)
    docs = [tokenize(t) for t in texts]
    if not q or not docs:
        return [0.0] * len(texts)
    if importlib.util.find_spec("bm25s") is not None:
        return _bm25s_scores(q, docs)
    return bm25_scores(q, docs)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """RRF score of every item appearing in ``rankings`` (lists of item indexes, best first)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


class HybridBM25Reranker(Reranker):
    """BM25 over the candidates fused with their vector order by RRF.

    Documents with no query term at all are left out of the lexical ranking (rather than
    ranked last), so lexical evidence only ever adds to a hit's fused score.
    """

    name = "bm25_rrf"

    def __init__(self, *, k: int = RRF_K) -> None:
        self.k = k

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        if not hits:
            return []
        lexical = lexical_scores(query, [h.content for h in hits])
        vector_order = sorted(range(len(hits)), key=lambda i: -hits[i].score)
        lexical_order = sorted(
            (i for i in range(len(hits)) if lexical[i] > 0), key=lambda i: -lexical[i]
        )
        fused = reciprocal_rank_fusion([vector_order, lexical_order], self.k)
        order = sorted(range(len(hits)), key=lambda i: (-fused[i], vector_order.index(i)))
        result = []
        for i in order[:top_k]:
            hit = hits[i]
            scores = {**hit.scores, "vector": hit.scores.get("vector", hit.score)}
            scores.update(bm25=lexical[i], rrf=fused[i])
            result.append(Hit(hit.id, hit.content, dict(hit.metadata), fused[i], scores))
        return result

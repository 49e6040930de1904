"""Rerankers: ``bm25_rrf`` (model-free hybrid, always works), ``cross_encoder`` (ONNX, from a
local model folder) and ``none``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from astromesh.rag.rerank.base import NoReranker, Reranker
from astromesh.rag.rerank.bm25 import HybridBM25Reranker, bm25_scores, reciprocal_rank_fusion

if TYPE_CHECKING:
    from astromesh.config.rag import RerankingConfig

__all__ = [
    "HybridBM25Reranker",
    "NoReranker",
    "Reranker",
    "bm25_scores",
    "build_reranker",
    "reciprocal_rank_fusion",
]


def build_reranker(config: RerankingConfig) -> Reranker:
    """The reranker of ``spec.reranking``.

    Naming a provider turns reranking on even without ``enabled: true`` (upstream files
    write ``reranking: {provider: bm25_rrf}`` and mean it); an explicit ``enabled: false`` or
    ``provider: none`` turns it off.
    """
    if not config.enabled and "enabled" in config.model_fields_set:
        return NoReranker()
    if config.provider == "bm25_rrf":
        return HybridBM25Reranker()
    if config.provider == "cross_encoder":
        from astromesh.rag.rerank.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker(config.model)
    return NoReranker()

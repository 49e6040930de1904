"""The reranker interface: re-order a query's candidate hits, best first."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from astromesh.rag.types import Hit


class Reranker(ABC):
    """Takes the vector store's candidates and returns the ``top_k`` most relevant."""

    name: str

    @abstractmethod
    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        """``hits`` re-ordered (scores replaced, earlier scores kept in ``Hit.scores``)."""


class NoReranker(Reranker):
    """Keep the vector order."""

    name = "none"

    async def rerank(self, query: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        return list(hits)[:top_k]

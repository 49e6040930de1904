"""Shared RAG fixtures: the packaged ONNX embedder (loaded once) and a small fake embedder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from astromesh.rag.embeddings.base import Embedder
from astromesh.rag.embeddings.onnx import OnnxEmbedder


@pytest.fixture(scope="session")
def onnx_embedder() -> OnnxEmbedder:
    return OnnxEmbedder("all-MiniLM-L6-v2")


class CountingEmbedder(Embedder):
    """Deterministic bag-of-words vectors; counts the texts it embedded."""

    provider = "fake"

    def __init__(self, dimension: int = 64) -> None:
        super().__init__("fake", dimension=dimension)
        self.embedded = 0

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        vectors = []
        for text in texts:
            vector = [0.0] * (self.dimension or 64)
            for word in text.lower().split():
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % len(vector)] += 1.0
            vectors.append(vector if any(vector) else [1.0] + [0.0] * (len(vector) - 1))
        return vectors


@pytest.fixture
def counting_embedder() -> CountingEmbedder:
    return CountingEmbedder()


def texts_of(hits: Sequence[object]) -> list[str]:
    return [h.content for h in hits]  # type: ignore[attr-defined]

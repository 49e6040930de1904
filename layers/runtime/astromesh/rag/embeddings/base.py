"""The embedder interface: texts in, unit-length vectors out, in batches.

The shared flow (batching, dimension check, L2 normalisation) lives here once; a backend only
embeds one batch. Vectors are normalised so that an inner product *is* the cosine
similarity: FAISS' inner-product index and pgvector's cosine operator then agree, and a
``similarity_threshold`` means the same thing whatever embedded the text.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from astromesh.errors import AstromeshError, ConfigurationError
from astromesh.rag.types import Vector
from astromesh.telemetry import genai


class EmbeddingError(AstromeshError):
    """An embedding backend failed (unreachable, an error status, a malformed answer)."""

    code = "embedding_error"
    status = 502


class Embedder(ABC):
    """Turns texts into vectors of :attr:`dimension` floats.

    Args:
        model: the model name the backend knows.
        dimension: the expected vector size; checked against every answer (a wrong value in
            the pipeline document would otherwise surface as a vector-store error much later).
        batch_size: texts per backend call.
    """

    provider: str
    unit_vectors: bool = False
    """Set by backends whose vectors are already unit length (skips a second pass)."""

    def __init__(self, model: str, *, dimension: int | None = None, batch_size: int = 32) -> None:
        self.model = model
        self.dimension = dimension
        self.batch_size = max(1, batch_size)

    @abstractmethod
    async def _embed_batch(self, texts: list[str]) -> list[Vector]:
        """Vectors for one batch, in the order of ``texts``."""

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Unit-length vectors for ``texts``, in order (one ``embeddings`` span)."""
        with genai.embeddings(self.provider, self.model, len(texts)):
            return await self._embed(texts)

    async def _embed(self, texts: Sequence[str]) -> list[Vector]:
        """Backends whose own batching is better override this (ONNX encodes in one pass)."""
        vectors: list[Vector] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            found = await self._embed_batch(batch)
            if len(found) != len(batch):
                raise EmbeddingError(
                    f"{self.provider}/{self.model}: asked for {len(batch)} vectors, got "
                    f"{len(found)}"
                )
            vectors.extend(found)
        for vector in vectors:
            self._check_dimension(len(vector))
        return vectors if self.unit_vectors else [normalize(v) for v in vectors]

    async def embed_one(self, text: str) -> Vector:
        """The vector of one text (a query)."""
        return (await self.embed([text]))[0]

    def _check_dimension(self, found: int) -> None:
        if self.dimension is None:
            self.dimension = found
        elif found != self.dimension:
            raise ConfigurationError(
                f"{self.provider}/{self.model} returns {found}-dimensional vectors but the "
                f"pipeline says dimension: {self.dimension}"
            )

    async def aclose(self) -> None:  # noqa: B027 - optional hook, local models hold no connection
        """Release connections."""


def normalize(vector: Sequence[float]) -> Vector:
    """``vector`` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0:
        return [float(x) for x in vector]
    return [float(x) / norm for x in vector]

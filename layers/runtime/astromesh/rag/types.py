"""The vocabulary every RAG stage shares: chunks, stored records and search hits.

Plain dataclasses with JSON-friendly fields, so a hit can go straight into the REST answer of
``/v1/rag/query`` (``{content, metadata, score}``) and into a run's steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Vector = list[float]
"""An embedding. Lists (not numpy arrays) cross module boundaries so that callers of the light
install never need numpy; the stores convert once, where the maths happens."""


@dataclass(slots=True)
class Chunk:
    """A piece of a document: its text and where it came from.

    ``metadata`` always holds ``source`` (the document's name or path), ``chunk_index``,
    ``start`` and ``end`` (character offsets into the document, so ``text[start:end] ==
    content``), plus whatever the chunker adds (``section`` for markdown).
    """

    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Record:
    """A chunk as a vector store keeps it."""

    id: str
    doc_id: str
    content: str
    vector: Vector
    metadata: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""
    """Hash of the whole document (and of the settings that shaped its chunks): what
    ingestion compares to decide that a re-ingested document changed."""


@dataclass(slots=True)
class Hit:
    """One search result. ``score`` is cosine similarity (1 = same direction) until a reranker
    replaces it; ``scores`` keeps every stage's figure for the record."""

    id: str
    content: str
    metadata: dict[str, Any]
    score: float
    scores: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The result shape of ``/v1/rag/query``: ``content``, ``metadata``, ``score``, plus
        ``id`` and ``scores``."""
        return {
            "id": self.id,
            "content": self.content,
            "metadata": dict(self.metadata),
            "score": self.score,
            "scores": dict(self.scores),
        }

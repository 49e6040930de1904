"""The vector-store interface: records grouped by document, searched by cosine similarity.

Records belong to a document (``doc_id``) and carry that document's content hash, which is
what makes ingestion idempotent: :meth:`VectorStore.document_hash` says what was indexed, and
:meth:`VectorStore.replace_document` swaps a document's chunks in one step (one transaction
where the backend has them), so a reader never sees a document half old, half new.

``where`` filters are equality on metadata keys (``{"scope": "agent:x"}``); every backend
applies them before cutting to ``top_k`` so a filtered search still returns ``top_k`` hits
when that many match.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from astromesh.rag.types import Hit, Record, Vector

Where = Mapping[str, Any]


class VectorStore(ABC):
    """Where a pipeline's (or a semantic memory's) vectors live."""

    backend: str

    async def open(self) -> None:  # noqa: B027 - optional hook, in-process stores hold nothing
        """Connect and create tables now rather than on first use."""

    @abstractmethod
    async def replace_document(self, doc_id: str, records: Sequence[Record]) -> None:
        """Make ``records`` the only records of ``doc_id`` (older ones are removed)."""

    @abstractmethod
    async def delete_document(self, doc_id: str) -> int:
        """Remove every record of ``doc_id``; return how many there were."""

    @abstractmethod
    async def document_hash(self, doc_id: str) -> str | None:
        """The content hash stored with ``doc_id``'s records, ``None`` when it has none."""

    @abstractmethod
    async def search(
        self, vector: Vector, top_k: int, *, where: Where | None = None, threshold: float = 0.0
    ) -> list[Hit]:
        """The ``top_k`` records most similar to ``vector`` with similarity >= ``threshold``,
        best first; ``Hit.score`` is the cosine similarity."""

    @abstractmethod
    async def list_records(
        self, *, where: Where | None = None, limit: int = 50, offset: int = 0
    ) -> list[Hit]:
        """Records in insertion order (score 0), for listings such as semantic memories."""

    @abstractmethod
    async def count(self) -> int:
        """How many records the store holds."""

    async def close(self) -> None:  # noqa: B027 - optional hook, in-process stores hold nothing
        """Release connections and files."""


def matches(metadata: Mapping[str, Any], where: Where | None) -> bool:
    """Whether ``metadata`` has every key of ``where`` with an equal value."""
    return where is None or all(metadata.get(k) == v for k, v in where.items())

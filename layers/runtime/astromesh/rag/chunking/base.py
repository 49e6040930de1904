"""The chunker interface and the span arithmetic every strategy shares.

Strategies work on character offsets, never on copied strings: a chunk is a ``(start, end)``
range of the original text, so its position metadata is exact by construction and a property
test can check ``text[start:end] == chunk.content`` for any input.

Sizes are in characters. A chunk is never longer than ``chunk_size``; ``overlap`` is the most
text two neighbouring chunks share (exactly that for ``fixed``; for the strategies that cut
at separators it is made of whole pieces, so it can be less).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from astromesh.rag.types import Chunk

Span = tuple[int, int]

DEFAULT_SEPARATORS: tuple[str, ...] = ("\n\n", "\n", ". ", " ", "")
"""Paragraphs, lines, sentences, words, then characters: the coarsest cut that fits wins."""


class Chunker(ABC):
    """Splits one document into chunks with source and position metadata."""

    strategy: str

    def __init__(self, *, chunk_size: int, overlap: int) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if not 0 <= overlap < chunk_size:
            raise ValueError("overlap must be at least 0 and smaller than chunk_size")
        self.chunk_size = chunk_size
        self.overlap = overlap

    @abstractmethod
    def spans(self, text: str) -> list[tuple[Span, dict[str, Any]]]:
        """The chunk ranges of ``text`` in order, each with strategy-specific metadata."""

    def split(
        self, text: str, *, source: str = "", metadata: dict[str, Any] | None = None
    ) -> list[Chunk]:
        """Chunks of ``text``; surrounding whitespace is trimmed and empty chunks dropped."""
        chunks: list[Chunk] = []
        for (start, end), extra in self.spans(text):
            start, end = trim(text, start, end)
            if start >= end:
                continue
            meta = dict(metadata or {})
            meta.update(extra)
            meta.update(
                source=source,
                chunk_index=len(chunks),
                start=start,
                end=end,
                strategy=self.strategy,
            )
            chunks.append(Chunk(text[start:end], meta))
        return chunks


def trim(text: str, start: int, end: int) -> Span:
    """``(start, end)`` narrowed to exclude leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_keeping(text: str, start: int, end: int, separator: str) -> list[Span]:
    """Contiguous pieces of ``text[start:end]`` cut after each ``separator``.

    The separator stays at the end of the piece before it, so the pieces cover the range
    exactly and nothing is lost between chunks.
    """
    pieces: list[Span] = []
    cursor = start
    while True:
        found = text.find(separator, cursor, end)
        if found < 0:
            break
        cut = found + len(separator)
        if cut >= end:
            break
        pieces.append((cursor, cut))
        cursor = cut
    pieces.append((cursor, end))
    return pieces


def hard_split(start: int, end: int, size: int) -> list[Span]:
    """Back-to-back windows of at most ``size`` characters (the last resort)."""
    return [(i, min(i + size, end)) for i in range(start, end, size)]


def atoms(text: str, start: int, end: int, separators: Sequence[str], size: int) -> list[Span]:
    """Contiguous pieces of at most ``size`` characters, cut at the coarsest separator.

    The first separator that occurs in the range splits it; a piece still too long is split
    again with the separators after that one; with none left (or ``""``), by characters.
    """
    if end - start <= size:
        return [(start, end)]
    for index, separator in enumerate(separators):
        if separator == "":
            break
        if text.find(separator, start, end) < 0:
            continue
        result: list[Span] = []
        rest = separators[index + 1 :]
        for piece_start, piece_end in split_keeping(text, start, end, separator):
            result.extend(atoms(text, piece_start, piece_end, rest, size))
        return result
    return hard_split(start, end, size)


def merge(pieces: Sequence[Span], size: int, overlap: int) -> list[Span]:
    """Greedily pack contiguous pieces (each at most ``size``) into chunks of at most ``size``.

    A new chunk starts with the trailing pieces of the previous one that fit in ``overlap``
    (and leave room for the next piece), so context carries across the cut in whole pieces.
    """
    chunks: list[Span] = []
    current: list[Span] = []
    for piece in pieces:
        if current and piece[1] - current[0][0] > size:
            chunks.append((current[0][0], current[-1][1]))
            carried: list[Span] = []
            for previous in reversed(current):
                if current[-1][1] - previous[0] > overlap or piece[1] - previous[0] > size:
                    break
                carried.insert(0, previous)
            current = carried
        current.append(piece)
    if current:
        chunks.append((current[0][0], current[-1][1]))
    return chunks

"""The four chunking strategies of a RAGPipeline: fixed, recursive, sentence, markdown."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from astromesh.rag.chunking.base import (
    DEFAULT_SEPARATORS,
    Chunker,
    Span,
    atoms,
    hard_split,
    merge,
)


class FixedChunker(Chunker):
    """Windows of ``chunk_size`` characters, each starting ``chunk_size - overlap`` after the
    previous one: predictable sizes, blind to words (use it for text without structure)."""

    strategy = "fixed"

    def spans(self, text: str) -> list[tuple[Span, dict[str, Any]]]:
        step = self.chunk_size - self.overlap
        found: list[tuple[Span, dict[str, Any]]] = []
        for start in range(0, len(text), step):
            end = min(start + self.chunk_size, len(text))
            found.append(((start, end), {}))
            if end == len(text):
                break
        return found


class RecursiveChunker(Chunker):
    """Cut at the coarsest separator that yields pieces that fit (paragraphs, then lines,
    sentences, words, characters), then pack neighbouring pieces up to ``chunk_size``."""

    strategy = "recursive"

    def __init__(
        self, *, chunk_size: int, overlap: int, separators: Sequence[str] | None = None
    ) -> None:
        super().__init__(chunk_size=chunk_size, overlap=overlap)
        self.separators = tuple(separators) if separators else DEFAULT_SEPARATORS

    def spans(self, text: str) -> list[tuple[Span, dict[str, Any]]]:
        pieces = atoms(text, 0, len(text), self.separators, self.chunk_size)
        return [(span, {}) for span in merge(pieces, self.chunk_size, self.overlap)]


_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"')\]]*\s+|\n\s*\n")
"""A sentence ends after terminal punctuation (and closing quotes/brackets) followed by
whitespace, or at a blank line (headings and list items have no full stop)."""

_INSIDE_SENTENCE = ("; ", ", ", " ", "")


class SentenceChunker(Chunker):
    """Whole sentences packed up to ``chunk_size``; the overlap is whole sentences too. A
    sentence longer than ``chunk_size`` is cut at clauses, then words."""

    strategy = "sentence"

    def spans(self, text: str) -> list[tuple[Span, dict[str, Any]]]:
        pieces: list[Span] = []
        for start, end in sentence_spans(text):
            pieces.extend(atoms(text, start, end, _INSIDE_SENTENCE, self.chunk_size))
        return [(span, {}) for span in merge(pieces, self.chunk_size, self.overlap)]


def sentence_spans(text: str) -> list[Span]:
    """Contiguous sentence ranges covering ``text`` (trailing whitespace stays with each)."""
    spans: list[Span] = []
    cursor = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > cursor:
            spans.append((cursor, match.end()))
            cursor = match.end()
    if cursor < len(text):
        spans.append((cursor, len(text)))
    return spans


_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MARKDOWN_SEPARATORS = ("\n\n", "\n", ". ", " ", "")


class MarkdownChunker(Chunker):
    """One chunk per heading section (``#`` to ``######``, ignoring ``#`` lines inside fenced
    code); a section longer than ``chunk_size`` is split recursively within itself, never
    across headings. Each chunk records its heading path as ``section`` ("A > B")."""

    strategy = "markdown"

    def spans(self, text: str) -> list[tuple[Span, dict[str, Any]]]:
        found: list[tuple[Span, dict[str, Any]]] = []
        for (start, end), path in markdown_sections(text):
            meta: dict[str, Any] = {"section": " > ".join(path), "headings": list(path)}
            pieces = atoms(text, start, end, _MARKDOWN_SEPARATORS, self.chunk_size)
            for span in merge(pieces, self.chunk_size, self.overlap):
                found.append((span, dict(meta, headings=list(path))))
        return found


def markdown_sections(text: str) -> list[tuple[Span, tuple[str, ...]]]:
    """Contiguous ranges from one heading to the next, each with its heading path."""
    sections: list[tuple[Span, tuple[str, ...]]] = []
    path: list[tuple[int, str]] = []
    section_start = 0
    section_path: tuple[str, ...] = ()
    fence: str | None = None
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence_match is not None:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker.startswith(fence):
                fence = None
        elif fence is None and (heading := _HEADING.match(stripped)) is not None:
            if offset > section_start:
                sections.append(((section_start, offset), section_path))
            level = len(heading.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, heading.group(2).strip()))
            section_start = offset
            section_path = tuple(title for _, title in path)
        offset += len(line)
    if offset > section_start:
        sections.append(((section_start, offset), section_path))
    return sections


__all__ = [
    "FixedChunker",
    "MarkdownChunker",
    "RecursiveChunker",
    "SentenceChunker",
    "hard_split",
    "markdown_sections",
    "sentence_spans",
]

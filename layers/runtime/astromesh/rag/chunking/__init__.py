"""Chunkers: ``fixed``, ``recursive``, ``sentence`` and ``markdown`` (see ``strategies``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from astromesh.rag.chunking.base import Chunker
from astromesh.rag.chunking.strategies import (
    FixedChunker,
    MarkdownChunker,
    RecursiveChunker,
    SentenceChunker,
)

if TYPE_CHECKING:
    from astromesh.config.rag import ChunkingConfig

__all__ = [
    "Chunker",
    "FixedChunker",
    "MarkdownChunker",
    "RecursiveChunker",
    "SentenceChunker",
    "build_chunker",
]


def build_chunker(config: ChunkingConfig) -> Chunker:
    """The chunker a pipeline's ``spec.chunking`` names."""
    size, overlap = config.chunk_size, config.overlap
    if config.strategy == "fixed":
        return FixedChunker(chunk_size=size, overlap=overlap)
    if config.strategy == "recursive":
        return RecursiveChunker(chunk_size=size, overlap=overlap, separators=config.separators)
    if config.strategy == "sentence":
        return SentenceChunker(chunk_size=size, overlap=overlap)
    return MarkdownChunker(chunk_size=size, overlap=overlap)

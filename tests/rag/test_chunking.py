"""Chunkers: exact positions, size limits, overlap and structure, checked on arbitrary text."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astromesh.config.rag import ChunkingConfig
from astromesh.rag.chunking import (
    FixedChunker,
    MarkdownChunker,
    RecursiveChunker,
    SentenceChunker,
    build_chunker,
)

TEXT = st.lists(
    st.sampled_from([*"abc de.\n#!?,", "\n\n", ". ", "# ", "## ", "word ", "```\n"]),
    max_size=200,
).map("".join)

CHUNKERS = [
    lambda size, overlap: FixedChunker(chunk_size=size, overlap=overlap),
    lambda size, overlap: RecursiveChunker(chunk_size=size, overlap=overlap),
    lambda size, overlap: SentenceChunker(chunk_size=size, overlap=overlap),
    lambda size, overlap: MarkdownChunker(chunk_size=size, overlap=overlap),
]


@pytest.mark.parametrize("make", CHUNKERS, ids=["fixed", "recursive", "sentence", "markdown"])
@settings(max_examples=60, deadline=None)
@given(text=TEXT, size=st.integers(5, 80), ratio=st.floats(0, 0.9))
def test_positions_sizes_and_coverage(make, text, size, ratio):
    chunker = make(size, int(size * ratio))
    chunks = chunker.split(text, source="doc.md")
    covered = set()
    for index, chunk in enumerate(chunks):
        meta = chunk.metadata
        assert text[meta["start"] : meta["end"]] == chunk.content
        assert 0 < len(chunk.content) <= size
        assert chunk.content == chunk.content.strip()
        assert meta["source"] == "doc.md" and meta["chunk_index"] == index
        covered.update(range(meta["start"], meta["end"]))
    # Every non-whitespace character lands in some chunk: nothing is lost between chunks.
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    starts = [c.metadata["start"] for c in chunks]
    assert starts == sorted(starts)


def test_fixed_overlap_is_exact():
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    chunks = FixedChunker(chunk_size=30, overlap=10).split(text)
    assert [c.metadata["start"] for c in chunks] == [0, 20, 40, 60, 80]
    assert chunks[0].content[-10:] == chunks[1].content[:10]


def test_recursive_prefers_paragraphs_then_carries_overlap():
    text = "First paragraph here.\n\nSecond paragraph there.\n\nThird one."
    chunks = RecursiveChunker(chunk_size=30, overlap=0).split(text)
    assert [c.content for c in chunks] == [
        "First paragraph here.",
        "Second paragraph there.",
        "Third one.",
    ]
    words = " ".join(f"w{i}" for i in range(40))
    overlapping = RecursiveChunker(chunk_size=30, overlap=10, separators=[" "]).split(words)
    for left, right in itertools.pairwise(overlapping):
        assert right.metadata["start"] < left.metadata["end"]  # they share text
        assert left.metadata["end"] - right.metadata["start"] <= 10


def test_sentence_keeps_sentences_whole():
    text = "The cat sat. The dog ran away quickly! Did the bird sing? Yes."
    chunks = SentenceChunker(chunk_size=40, overlap=0).split(text)
    assert [c.content for c in chunks] == [
        "The cat sat. The dog ran away quickly!",
        "Did the bird sing? Yes.",
    ]


def test_markdown_splits_by_heading_and_records_the_path():
    text = (
        "Intro line.\n\n# Install\nRun pip.\n\n## Extras\nUse ml.\n\n```\n# not a heading\n```\n"
        "# Usage\nCall it.\n"
    )
    chunks = MarkdownChunker(chunk_size=200, overlap=0).split(text)
    assert [c.metadata["section"] for c in chunks] == [
        "",
        "Install",
        "Install > Extras",
        "Usage",
    ]
    assert "# not a heading" in chunks[2].content


def test_build_chunker_follows_the_document():
    config = ChunkingConfig(strategy="recursive", chunk_size=50, overlap=5, separators=["|"])
    chunker = build_chunker(config)
    assert isinstance(chunker, RecursiveChunker) and chunker.separators == ("|",)
    assert isinstance(build_chunker(ChunkingConfig(strategy="markdown")), MarkdownChunker)

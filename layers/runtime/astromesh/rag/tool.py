"""RAG as an agent tool (``type: rag``): the text a model reads for a retrieval call.

The tool registry wraps this (``tools/`` owns tool plumbing); here is only what the tool
returns: the top chunks, numbered, each with its source so the answer can cite it.
"""

from __future__ import annotations

from collections.abc import Sequence

from astromesh.rag.pipeline import RAGPipeline
from astromesh.rag.types import Hit


def format_hits(hits: Sequence[Hit]) -> str:
    """``[1] source > section (score 0.83)`` then the chunk, for each hit."""
    if not hits:
        return "No relevant documents found."
    blocks = []
    for number, hit in enumerate(hits, start=1):
        where = str(hit.metadata.get("source") or hit.id)
        if hit.metadata.get("section"):
            where += f" > {hit.metadata['section']}"
        blocks.append(f"[{number}] {where} (score {hit.score:.3f})\n{hit.content}")
    return "\n\n".join(blocks)


async def retrieve_for_tool(pipeline: RAGPipeline, query: str, top_k: int = 5) -> str:
    """What a ``type: rag`` tool answers for ``query``."""
    return format_hits(await pipeline.search(query, top_k))

"""RAG tools: retrieval from a RAGPipeline, offered to the model as a search tool.

YAML (``type: rag``): ``pipeline`` (a RAGPipeline document's name) and ``top_k``. The tool
takes ``query`` (and, if the model wants fewer passages, ``top_k`` up to the configured
one) and returns the passages numbered, with their source and score, for the model to cite.

The retrieval itself is not here: it is an injected :data:`Retriever`, an
``(query, top_k) -> [{"content", "metadata", "score"}]`` callable (sync or async; a sync one
runs in a worker thread, since embedding and search are CPU work). The RAG package
(``astromesh.rag``, in progress) provides one per pipeline; the factory asks for it with
``retriever_for(pipeline_name)``. Until that is wired, a ``rag`` tool is a configuration
error saying so.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext

Passage = Mapping[str, Any]
Retriever = Callable[[str, int], "list[Passage] | Awaitable[list[Passage]]"]
"""``(query, top_k) -> passages``, each ``{"content": str, "metadata": dict, "score": float}``."""

MAX_PASSAGE_CHARS = 4_000


class RagTool(Tool):
    """Searches one RAG pipeline."""

    def __init__(
        self,
        name: str,
        *,
        pipeline: str,
        retriever: Retriever,
        top_k: int = 5,
        description: str = "",
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.retriever = retriever
        self.top_k = top_k
        schema = parameters or {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look up"}},
            "required": ["query"],
        }
        if "top_k" not in schema.get("properties", {}):
            schema = {
                **schema,
                "properties": {
                    **schema.get("properties", {}),
                    "top_k": {"type": "integer", "minimum": 1, "maximum": top_k},
                },
            }
        super().__init__(
            name=name,
            description=description or f"Search the {pipeline} knowledge base",
            parameters=schema,
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        query = str(arguments.get("query", "")).strip()
        if not query:
            raise ToolError("query is empty")
        top_k = min(int(arguments.get("top_k") or self.top_k), self.top_k)
        if inspect.iscoroutinefunction(self.retriever):
            found = await self.retriever(query, top_k)
        else:
            found = await asyncio.to_thread(self.retriever, query, top_k)
            if inspect.isawaitable(found):
                found = await found
        return render_passages(list(found)[:top_k])


def render_passages(passages: list[Passage]) -> str:
    """Numbered passages with source and score, or a clear "nothing found"."""
    if not passages:
        return "No matching passages were found."
    blocks = []
    for i, passage in enumerate(passages, start=1):
        metadata = passage.get("metadata") or {}
        source = metadata.get("source") or metadata.get("doc_id") or metadata.get("title")
        score = passage.get("score")
        head = f"[{i}]" + (f" source: {source}" if source else "")
        if isinstance(score, int | float):
            head += f" (score {score:.3f})"
        content = str(passage.get("content", ""))
        if len(content) > MAX_PASSAGE_CHARS:
            content = content[:MAX_PASSAGE_CHARS] + " [...]"
        blocks.append(f"{head}\n{content}")
    return "\n\n".join(blocks)

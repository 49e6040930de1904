"""``rag_query`` and ``rag_ingest``: upstream's RAG builtins over this runtime's RAGPipelines.

Upstream's take the agent's pipeline from its run context; here the pipeline is
``config.pipeline`` (a RAGPipeline document's name), or the only pipeline there is, exactly
as a ``type: rag`` tool that names none.

- ``rag_query`` (``query``, ``top_k``) is a :class:`~astromesh.tools.rag.RagTool`: numbered
  passages with source and score, ``top_k`` capped at ``config.top_k``.
- ``rag_ingest`` (``document``, ``metadata``) indexes a text. Pipelines are shared by every
  tenant, so each agent's documents get ids under its own prefix (``tenant:agent:...``): an
  agent replaces its own earlier version of a ``source``, never another agent's or an
  operator's document. Documents are bounded (``config.max_chars``) and metadata kept flat
  and small. It writes into a shared index, so registered agents get it only when the policy
  lists it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field

from astromesh.errors import ConfigurationError, ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig
from astromesh.tools.rag import RagTool

IngestFn = Callable[[str, dict[str, Any], str], Awaitable[dict[str, Any]]]


class RagQueryConfig(BuiltinConfig):
    pipeline: str | None = None
    top_k: int = Field(5, ge=1, le=50)


class RagIngestConfig(BuiltinConfig):
    pipeline: str | None = None
    max_chars: int = Field(200_000, ge=1, le=5_000_000)


def build_rag_query(
    name: str, description: str, config: RagQueryConfig, retriever_for: Callable[..., Any] | None
) -> RagTool:
    if retriever_for is None:
        raise ConfigurationError(f"builtin tool {name!r} needs a RAG pipeline; none is wired")
    pipeline, retriever = retriever_for(config.pipeline)
    return RagTool(
        name,
        pipeline=pipeline,
        retriever=retriever,
        top_k=config.top_k,
        description=description or f"Query the {pipeline} knowledge base",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look up"}},
            "required": ["query"],
        },
    )


class RagIngestTool(Tool):
    """Indexes a text into one pipeline, under the calling agent's own ids."""

    def __init__(
        self,
        name: str,
        description: str,
        *,
        pipeline: str,
        ingest: IngestFn,
        max_chars: int = 200_000,
    ) -> None:
        self.pipeline = pipeline
        self._ingest = ingest
        self.max_chars = max_chars
        super().__init__(
            name=name,
            description=description or f"Add a document to the {pipeline} knowledge base",
            parameters={
                "type": "object",
                "properties": {
                    "document": {"type": "string", "minLength": 1},
                    "metadata": {
                        "type": "object",
                        "maxProperties": 20,
                        "additionalProperties": {
                            "type": ["string", "number", "boolean"],
                            "maxLength": 500,
                        },
                    },
                },
                "required": ["document"],
                "additionalProperties": False,
            },
        )

    @classmethod
    def from_config(
        cls,
        name: str,
        description: str,
        config: RagIngestConfig,
        ingester_for: Callable[..., Any] | None,
    ) -> RagIngestTool:
        if ingester_for is None:
            raise ConfigurationError(f"builtin tool {name!r} needs a RAG pipeline; none is wired")
        pipeline, ingest = ingester_for(config.pipeline)
        return cls(name, description, pipeline=pipeline, ingest=ingest, max_chars=config.max_chars)

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        document = str(arguments["document"])
        if len(document) > self.max_chars:
            raise ToolError(f"document is {len(document)} characters; at most {self.max_chars}")
        prefix = f"{context.namespace}:{context.agent}"
        result = await self._ingest(document, dict(arguments.get("metadata") or {}), prefix)
        return {"ingested": True, "pipeline": self.pipeline, **result}

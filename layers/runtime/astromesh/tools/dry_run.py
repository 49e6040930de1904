"""``permissions.execution.dry_run``: side-effecting tools describe the call instead.

Upstream Astromesh documents the flag for agents that should be tried against real prompts
without touching real systems. A tool counts as side-effecting when the runtime cannot tell
that it is not: webhooks other than ``GET``, Python functions, MCP tools and the builtins that
send or write (:data:`SIDE_EFFECTING_BUILTINS`). Reading tools (the other builtins, RAG,
``GET`` webhooks) and agent tools (whose own permissions apply) run as usual.
The model gets a successful result saying what would have been done, so the run goes on.
"""

from __future__ import annotations

from typing import Any

from astromesh.tools.base import Tool, ToolContext

SIDE_EFFECTING_BUILTINS = frozenset(
    {
        "http_request",
        "send_webhook",
        "write_file",
        "send_slack",
        "send_email",
        "rag_ingest",
        "graphql_query",
    }
)
"""Builtins that may change something elsewhere (``http_request`` can POST or DELETE, a
GraphQL operation can be a mutation)."""


def is_side_effecting(cfg: Any) -> bool:
    """Whether a ``spec.tools[]`` entry may change something outside the run."""
    if cfg.type == "builtin":
        return cfg.name in SIDE_EFFECTING_BUILTINS
    if cfg.type == "webhook":
        return bool(cfg.method != "GET")
    return cfg.type in ("python", "mcp")


class DryRunTool(Tool):
    """Offers ``inner``'s name and schema; a call is validated, then only described."""

    def __init__(self, inner: Tool) -> None:
        self.inner = inner
        super().__init__(inner.name, inner.description, inner.parameters)

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return {
            "dry_run": True,
            "tool": self.name,
            "arguments": arguments,
            "note": "permissions.execution.dry_run is set: the call was not made",
        }

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()

"""``graphql_query``: upstream's GraphQL client builtin, through the SSRF guard.

Arguments as upstream's: ``endpoint``, ``query``, ``variables``, ``headers``. The request is
a POST of ``{"query", "variables"}``; the answer is the server's JSON (``data`` and
``errors`` as GraphQL returns them) with the HTTP status. The endpoint comes from the model,
so it gets everything :mod:`._network` gives every network builtin: the SSRF guard on every
connection (no redirects followed), host allowlists, a bounded body, no ``Host`` header.
A mutation changes things, so ``dry_run`` covers this tool.
"""

from __future__ import annotations

import json
from typing import Any

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._network import GuardedHTTP, NetworkConfig, request_headers
from astromesh.tools.ssrf import SSRFGuard


class GraphQLQueryConfig(NetworkConfig):
    pass


class GraphQLQueryTool(Tool):
    """Posts one GraphQL operation."""

    def __init__(
        self,
        name: str = "graphql_query",
        description: str = "",
        *,
        config: GraphQLQueryConfig | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or GraphQLQueryConfig()
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-graphql", follow_redirects=False
        )
        super().__init__(
            name=name,
            description=description or "Execute a GraphQL query against an endpoint.",
            parameters={
                "type": "object",
                "properties": {
                    "endpoint": {"type": "string", "description": "GraphQL URL (http or https)"},
                    "query": {"type": "string", "maxLength": 100_000},
                    "variables": {"type": "object"},
                    "headers": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                },
                "required": ["endpoint", "query"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        response = await self.http.fetch(
            "POST",
            arguments["endpoint"],
            json={"query": arguments["query"], "variables": arguments.get("variables") or {}},
            headers=request_headers(arguments.get("headers")),
        )
        if response.truncated:
            raise ToolError(f"the answer is larger than {len(response.body)} bytes")
        try:
            body = json.loads(response.body)
        except ValueError:
            raise ToolError(
                f"HTTP {response.status_code}: the endpoint did not answer JSON:"
                f" {response.text[:300]}"
            ) from None
        if not isinstance(body, dict):
            raise ToolError(f"HTTP {response.status_code}: not a GraphQL response")
        return {"status_code": response.status_code, **body}

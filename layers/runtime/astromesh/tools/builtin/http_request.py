"""``http_request``: upstream's HTTP client builtin (GET, POST, PUT, DELETE, PATCH), guarded.

Arguments as upstream's: ``method``, ``url``, ``headers``, ``body`` (sent as JSON for POST,
PUT and PATCH). The answer is upstream's shape, ``{status_code, headers, body}``, the body
parsed as JSON when it is JSON; a 4xx or 5xx is an answer too (an API client needs to read
the error), not a failed call. Everything else is :mod:`._network`'s: the SSRF guard on every
hop, host allowlists, a bounded body (``truncated`` says where it was cut).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._network import GuardedHTTP, NetworkConfig, request_headers
from astromesh.tools.ssrf import SSRFGuard

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class HttpRequestConfig(NetworkConfig):
    pass


class HttpRequestTool(Tool):
    """Sends one HTTP request through the SSRF guard."""

    def __init__(
        self,
        name: str = "http_request",
        description: str = "",
        *,
        config: HttpRequestConfig | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or HttpRequestConfig()
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-http-request", follow_redirects=True
        )
        super().__init__(
            name=name,
            description=description
            or "Make an HTTP request (GET, POST, PUT, DELETE, PATCH) to an external API.",
            parameters={
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": list(METHODS)},
                    "url": {"type": "string", "description": "Request URL (http or https)"},
                    "headers": {
                        "type": "object",
                        "description": "Request headers",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                    "body": {"description": "Request body, sent as JSON (POST/PUT/PATCH)"},
                },
                "required": ["method", "url"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        method = str(arguments["method"]).upper()
        kwargs: dict[str, Any] = {"headers": request_headers(arguments.get("headers"))}
        if method in _WITH_BODY and arguments.get("body") is not None:
            kwargs["json"] = arguments["body"]
        response = await self.http.fetch(method, arguments["url"], **kwargs)
        body: Any = response.text
        if not response.truncated and "json" in response.content_type:
            with contextlib.suppress(ValueError):  # labelled JSON but is not: keep the text
                body = json.loads(response.body)
        result: dict[str, Any] = {
            "status_code": response.status_code,
            "url": response.url,
            "headers": response.headers,
            "body": body,
        }
        if response.truncated:
            result["truncated"] = response.note()
        return result

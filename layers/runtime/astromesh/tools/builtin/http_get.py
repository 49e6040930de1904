"""``http_get``: fetch a URL (GET) and return its text, behind the SSRF guard.

The URL comes from the model, so this is the tool a prompt injection would use to reach
``169.254.169.254`` or an internal admin page: every connection, redirects included, goes
through :mod:`astromesh.tools.ssrf` (resolved, checked, pinned). ``config``:

- ``allow_private_network`` (false): let private and loopback addresses through;
- ``allowed_hosts``: when set, only these host names (exact, or ``*.example.com``);
- ``timeout_seconds`` (10), ``max_bytes`` (500,000: the body is cut there, with a note),
  ``max_redirects`` (5).

An HTTP status of 400 or more is a failed result carrying the status and the start of the
body, so the model can tell "not found" from "refused".
"""

from __future__ import annotations

import fnmatch
from typing import Any

import httpx
from pydantic import Field

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig
from astromesh.tools.ssrf import BlockedDestination, SSRFGuard, guarded_client


class HttpGetConfig(BuiltinConfig):
    allow_private_network: bool = False
    allowed_hosts: list[str] | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_bytes: int = Field(500_000, ge=1, le=20_000_000)
    max_redirects: int = Field(5, ge=0, le=20)


class HttpGetTool(Tool):
    """GETs a URL through the SSRF guard."""

    def __init__(
        self,
        name: str = "http_get",
        description: str = "",
        *,
        config: HttpGetConfig | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or HttpGetConfig()
        self.guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self._client: httpx.AsyncClient | None = None
        super().__init__(
            name=name,
            description=description or "Fetch a web page or API URL with GET; returns its text.",
            parameters={
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "An http:// or https:// URL"},
                },
                "required": ["url"],
                "additionalProperties": False,
            },
        )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = guarded_client(
                self.guard,
                timeout=self.config.timeout_seconds,
                follow_redirects=True,
                max_redirects=self.config.max_redirects,
                headers={"User-Agent": "astromesh-http-get"},
                event_hooks={"request": [self._before_request]},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _before_request(self, request: httpx.Request) -> None:
        """Runs before the first request and before every redirect hop is sent."""
        if request.url.scheme not in ("http", "https"):
            raise BlockedDestination(f"only http and https URLs are allowed, not {request.url}")
        patterns = self.config.allowed_hosts
        host = request.url.host
        if patterns is not None and not any(fnmatch.fnmatch(host, p) for p in patterns):
            raise BlockedDestination(f"host {host!r} is not in this tool's allowed_hosts")

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        url = arguments["url"]
        if not url.startswith(("http://", "https://")):
            raise BlockedDestination(f"only http and https URLs are allowed, not {url!r}")
        try:
            async with self._http().stream("GET", url) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.config.max_bytes:
                        break
        except httpx.TooManyRedirects:
            raise ToolError(f"more than {self.config.max_redirects} redirects") from None
        except httpx.TimeoutException:
            raise ToolError(f"timed out after {self.config.timeout_seconds:g}s") from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise ToolError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None
        text = bytes(body[: self.config.max_bytes]).decode(
            response.encoding or "utf-8", errors="replace"
        )
        if response.status_code >= 400:
            raise ToolError(f"HTTP {response.status_code} from {response.url}: {text[:500]}")
        result: dict[str, Any] = {
            "url": str(response.url),
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
            "content": text,
        }
        if len(body) > self.config.max_bytes:
            result["truncated"] = f"body cut at {self.config.max_bytes} bytes"
        return result

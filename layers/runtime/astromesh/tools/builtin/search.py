"""``web_search`` and ``wikipedia``: upstream's search builtins, through the SSRF guard.

- ``web_search`` (``query``, ``max_results``) asks Tavily (upstream's provider, the only one
  upstream implements): ``config.provider`` (``tavily``), the key from ``config.api_key`` or
  the ``TAVILY_API_KEY`` / ``SEARCH_API_KEY`` environment variables (for a registered agent
  only if the policy's ``secret_envs`` lists them). Without a key the call answers with
  exactly that: it needs provider ``tavily`` and a key in one of those places.
- ``wikipedia`` (``topic``, ``language``) reads a page summary from Wikipedia's REST API,
  which needs no key. The language code is checked (it becomes part of a host name) and the
  topic is escaped into the path.

``config.endpoint`` points either at another deployment of the same API (a proxy, a mirror,
a test server); it is reached through the guard like every network builtin's URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import Field

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._network import GuardedHTTP, NetworkConfig
from astromesh.tools.builtin.notify import NotConfigured
from astromesh.tools.ssrf import SSRFGuard

SEARCH_KEY_ENVS = ("TAVILY_API_KEY", "SEARCH_API_KEY")
TAVILY_ENDPOINT = "https://api.tavily.com/search"
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z]{2,8})?$")


class WebSearchConfig(NetworkConfig):
    provider: str = "tavily"
    api_key: str | None = None
    endpoint: str | None = None
    max_results: int = Field(10, ge=1, le=50)


class WikipediaConfig(NetworkConfig):
    endpoint: str | None = None
    """Base URL instead of ``https://{language}.wikipedia.org``."""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ToolError("the service answered something that is not JSON") from None


class WebSearchTool(Tool):
    """Searches the web with the configured provider."""

    def __init__(
        self,
        name: str = "web_search",
        description: str = "",
        *,
        config: WebSearchConfig | None = None,
        env: Mapping[str, str] | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or WebSearchConfig()
        env = env or {}
        self._key = self.config.api_key or next(
            (env[v] for v in SEARCH_KEY_ENVS if env.get(v)), None
        )
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-web-search", follow_redirects=False
        )
        super().__init__(
            name=name,
            description=description or "Search the web; returns titles, URLs and snippets.",
            parameters={
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 400},
                    "max_results": {"type": "integer", "minimum": 1, "default": 5},
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        if self.config.provider != "tavily":
            raise NotConfigured(
                f"web_search provider {self.config.provider!r} is not supported; it needs"
                " provider 'tavily'"
            )
        if not self._key:
            raise NotConfigured(
                "web_search is not configured: it needs provider 'tavily' and an API key in"
                f" the tool's config.api_key or the {' or '.join(SEARCH_KEY_ENVS)} environment"
                " variable"
            )
        count = min(int(arguments.get("max_results") or 5), self.config.max_results)
        response = await self.http.fetch(
            "POST",
            self.config.endpoint or TAVILY_ENDPOINT,
            json={"query": arguments["query"], "max_results": count, "api_key": self._key},
        )
        if response.status_code >= 400:
            # never echo the request: it carries the key
            raise ToolError(f"the search provider answered HTTP {response.status_code}")
        found = _json(response.body)
        results = found.get("results", []) if isinstance(found, dict) else []
        return {
            "results": [
                {
                    "title": r.get("title"),
                    "url": r.get("url"),
                    "content": str(r.get("content", ""))[:2000],
                }
                for r in results[:count]
                if isinstance(r, dict)
            ]
        }


class WikipediaTool(Tool):
    """Reads the summary of a Wikipedia article."""

    def __init__(
        self,
        name: str = "wikipedia",
        description: str = "",
        *,
        config: WikipediaConfig | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or WikipediaConfig()
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-wikipedia", follow_redirects=True
        )
        super().__init__(
            name=name,
            description=description or "Get the summary of a Wikipedia article.",
            parameters={
                "type": "object",
                "properties": {
                    "topic": {"type": "string", "minLength": 1, "maxLength": 300},
                    "language": {"type": "string", "default": "en"},
                },
                "required": ["topic"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        language = str(arguments.get("language") or "en").lower()
        if not _LANGUAGE.match(language):
            raise ToolError(f"language {language!r} is not a Wikipedia language code like 'en'")
        topic = str(arguments["topic"]).strip().replace(" ", "_")
        base = self.config.endpoint or f"https://{language}.wikipedia.org"
        url = f"{base.rstrip('/')}/api/rest_v1/page/summary/{quote(topic, safe='')}"
        response = await self.http.fetch("GET", url)
        if response.status_code == 404:
            raise ToolError(f"no Wikipedia article for {arguments['topic']!r}")
        if response.status_code >= 400:
            raise ToolError(f"Wikipedia answered HTTP {response.status_code}")
        page = _json(response.body)
        if not isinstance(page, dict):
            raise ToolError("Wikipedia answered something unexpected")
        urls = page.get("content_urls") or {}
        return {
            "title": page.get("title"),
            "extract": page.get("extract"),
            "url": (urls.get("desktop") or {}).get("page"),
        }

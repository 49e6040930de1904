"""``web_scrape``: a page's readable text (upstream's builtin), fetched through the SSRF guard.

Arguments as upstream's: ``url`` and ``max_length`` (characters of text returned, 10,000 by
default, never more than ``config.max_chars``). The HTML is parsed with the standard
library's parser, dropping ``script``, ``style`` and other non-text elements, instead of
upstream's regular expressions (which a crafted page can make slow or fool). The download is
bounded by ``max_response_bytes`` like every network builtin's.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from pydantic import Field

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._network import GuardedHTTP, NetworkConfig
from astromesh.tools.ssrf import SSRFGuard

_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCKS = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
)


class WebScrapeConfig(NetworkConfig):
    max_chars: int = Field(50_000, ge=1, le=1_000_000)


class _TextExtractor(HTMLParser):
    """Collects the text outside skipped elements, one space between words."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED:
            self._skip_depth += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED and self._skip_depth:
            self._skip_depth -= 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self._skip_depth:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return "\n".join(line for line in lines if line)


def html_text(html: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML document."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join(parser.title.split()), parser.text()


class WebScrapeTool(Tool):
    """Fetches a page and returns its text."""

    def __init__(
        self,
        name: str = "web_scrape",
        description: str = "",
        *,
        config: WebScrapeConfig | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or WebScrapeConfig()
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-web-scrape", follow_redirects=True
        )
        super().__init__(
            name=name,
            description=description
            or "Extract the text content of a web page (HTML converted to plain text).",
            parameters={
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "An http:// or https:// URL"},
                    "max_length": {"type": "integer", "minimum": 1, "default": 10_000},
                },
                "required": ["url"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        limit = min(int(arguments.get("max_length") or 10_000), self.config.max_chars)
        response = await self.http.fetch("GET", arguments["url"])
        if response.status_code >= 400:
            raise ToolError(f"HTTP {response.status_code} from {response.url}")
        if "html" in response.content_type or response.text.lstrip()[:1] == "<":
            title, text = html_text(response.text)
        else:
            title, text = "", response.text
        result: dict[str, Any] = {
            "url": response.url,
            "title": title,
            "content": text[:limit],
            "length": min(len(text), limit),
            "status_code": response.status_code,
        }
        if len(text) > limit or response.truncated:
            result["truncated"] = (
                response.note() or f"text cut at {limit} of {len(text)} characters"
            )
        return result

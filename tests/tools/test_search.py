"""``web_search`` and ``wikipedia`` against a scripted server on loopback standing in for the
provider (``config.endpoint``), and ``web_search``'s refusal naming the provider and key."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import build_builtin
from tests.support.http_receivers import Canned, ScriptedHTTPServer

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")
PRIVATE = {"allow_private_network": True}


def builtin(name: str, env: dict[str, str] | None = None, **config):
    cfg = TypeAdapter(AnyTool).validate_python({"type": "builtin", "name": name, "config": config})
    return build_builtin(cfg, env=env or {})


async def test_web_search_without_a_key_names_provider_and_key() -> None:
    result = await builtin("web_search").call({"query": "astromesh"}, CTX)
    assert not result.ok
    for words in ("provider 'tavily'", "config.api_key", "TAVILY_API_KEY", "SEARCH_API_KEY"):
        assert words in result.content


async def test_web_search_asks_tavily_with_the_operators_key() -> None:
    hits = [{"title": f"t{i}", "url": f"https://e.com/{i}", "content": "c"} for i in range(9)]
    with ScriptedHTTPServer([Canned(200, {"results": hits})]) as tavily:
        tool = builtin(
            "web_search", {"TAVILY_API_KEY": "tvly-secret"}, endpoint=tavily.url, **PRIVATE
        )
        result = await tool.call({"query": "astromesh", "max_results": 3}, CTX)
        assert result.ok, result.content
        assert [r["title"] for r in result.data["results"]] == ["t0", "t1", "t2"]
        sent = tavily.requests[0].json()
        assert sent == {"query": "astromesh", "max_results": 3, "api_key": "tvly-secret"}


async def test_web_search_errors_never_echo_the_key() -> None:
    with ScriptedHTTPServer([Canned(401, "bad key tvly-secret")]) as tavily:
        tool = builtin("web_search", api_key="tvly-secret", endpoint=tavily.url, **PRIVATE)
        result = await tool.call({"query": "x"}, CTX)
        assert not result.ok and "401" in result.content and "tvly-secret" not in result.content


async def test_wikipedia_reads_a_summary() -> None:
    page = {
        "title": "Ada Lovelace",
        "extract": "English mathematician.",
        "content_urls": {"desktop": {"page": "https://en.wikipedia.org/wiki/Ada_Lovelace"}},
    }
    with ScriptedHTTPServer([Canned(200, page), Canned(404, {})]) as wiki:
        tool = builtin("wikipedia", endpoint=wiki.url, **PRIVATE)
        result = await tool.call({"topic": "Ada Lovelace/../x"}, CTX)
        assert result.ok, result.content
        assert result.data["extract"] == "English mathematician."
        assert wiki.requests[0].path == "/api/rest_v1/page/summary/Ada_Lovelace%2F..%2Fx"
        missing = await tool.call({"topic": "Nope"}, CTX)
        assert not missing.ok and "no Wikipedia article" in missing.content


@pytest.mark.parametrize("language", ["127.0.0.1#", "en.evil.com/", "x" * 20])
async def test_wikipedia_checks_the_language(language: str) -> None:
    result = await builtin("wikipedia").call({"topic": "x", "language": language}, CTX)
    assert not result.ok and "language" in result.content


async def test_wikipedia_endpoint_goes_through_the_guard() -> None:
    with ScriptedHTTPServer() as wiki:
        result = await builtin("wikipedia", endpoint=wiki.url).call({"topic": "x"}, CTX)
        assert not result.ok and "loopback" in result.content
        assert wiki.requests == []

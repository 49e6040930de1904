"""The builtin tools: a small standard set, chosen in YAML by ``name`` and tuned by ``config``.

=================  =============================================================
``http_get``       GET a URL behind the SSRF guard (:mod:`.http_get`)
``json_transform`` JMESPath over JSON (:mod:`.json_transform`)
``text_summarize`` a summary written by the agent's model (:mod:`.text_summarize`)
``current_time``   now, in a time zone (:mod:`.current_time`)
``calculator``     arithmetic without ``eval`` (:mod:`.calculator`)
``read_file``      a text file confined to ``config.root`` (:mod:`.read_file`)
``http_request``   upstream's HTTP client, any method, guarded (:mod:`.http_request`)
``web_scrape``     a page's text, guarded (:mod:`.web_scrape`)
``graphql_query``  one GraphQL operation, guarded (:mod:`.graphql_query`)
``send_webhook``   POST JSON to a URL the model names, guarded (:mod:`.send_webhook`)
``write_file``     a text file written under a granted root (:mod:`.write_file`)
``sql_query``      one read-only statement on an allowed database (:mod:`.sql_query`)
``send_slack``     a Slack message through the operator's webhook (:mod:`.notify`)
``send_email``     an email through the operator's SMTP server (:mod:`.notify`)
``web_search``     Tavily search with the operator's or the agent's key (:mod:`.search`)
``wikipedia``      a Wikipedia article's summary (:mod:`.search`)
``rag_query``      search a RAGPipeline (:mod:`.rag_tools`)
``rag_ingest``     index a text into a RAGPipeline, under the agent's ids (:mod:`.rag_tools`)
``cache_store``    a bounded key-value cache per tenant and agent (:mod:`.cache_store`)
=================  =============================================================

``datetime_now`` and ``get_current_time`` are upstream's names for ``current_time``.

:func:`build_builtin` turns a ``type: builtin`` config into its tool; each module's
``*Config`` model checks ``config`` (unknown keys are errors) when the agent is built.

Each tool's module is imported when a tool of its kind is first built (and the names below
on first access, through the package's ``__getattr__``): the network tools bring httpx and
the SSRF guard, which an agent without them, or a handler that builds no agent, never loads
(docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants

if TYPE_CHECKING:
    from astromesh.tools.base import Tool
    from astromesh.tools.builtin.cache_store import ToolCache
    from astromesh.tools.builtin.text_summarize import Summariser
    from astromesh.tools.ssrf import SSRFGuard

CLOCK_NAMES = frozenset({"current_time", "datetime_now", "get_current_time"})
"""Our name and upstream's two for the same tool."""

_GUARDED: dict[str, tuple[str, str, str]] = {
    "http_request": ("http_request", "HttpRequestConfig", "HttpRequestTool"),
    "web_scrape": ("web_scrape", "WebScrapeConfig", "WebScrapeTool"),
    "send_webhook": ("send_webhook", "SendWebhookConfig", "SendWebhookTool"),
    "wikipedia": ("search", "WikipediaConfig", "WikipediaTool"),
    "graphql_query": ("graphql_query", "GraphQLQueryConfig", "GraphQLQueryTool"),
}
"""Builtins that reach a URL the model names: ``(module, config model, tool class)``, each
built with the grants' SSRF guard."""

_EXPORTS: dict[str, str] = {
    "CacheStoreTool": "cache_store",
    "CalculatorTool": "calculator",
    "CurrentTimeTool": "current_time",
    "GraphQLQueryTool": "graphql_query",
    "HttpGetTool": "http_get",
    "HttpRequestTool": "http_request",
    "JsonTransformTool": "json_transform",
    "RagIngestTool": "rag_tools",
    "ReadFileTool": "read_file",
    "SendEmailTool": "notify",
    "SendSlackTool": "notify",
    "SendWebhookTool": "send_webhook",
    "SqlQueryTool": "sql_query",
    "Summariser": "text_summarize",
    "TextSummarizeTool": "text_summarize",
    "ToolCache": "cache_store",
    "WebScrapeTool": "web_scrape",
    "WebSearchTool": "search",
    "WikipediaTool": "search",
    "WriteFileTool": "write_file",
    "router_summariser": "text_summarize",
}
"""Where each public name lives, for :func:`__getattr__`."""

__all__ = [*sorted(_EXPORTS), "build_builtin"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _module(name: str) -> Any:
    return import_module(f"{__name__}.{name}")


def build_builtin(
    cfg: Any,
    *,
    search_path: Path | None = None,
    summariser: Summariser | None = None,
    guard: SSRFGuard | None = None,
    grants: Grants = FILE_AGENT_GRANTS,
    env: Mapping[str, str] | None = None,
    retriever_for: Callable[[str | None], tuple[str, Any]] | None = None,
    ingester_for: Callable[[str | None], tuple[str, Any]] | None = None,
    cache: ToolCache | None = None,
) -> Tool:
    """The builtin tool ``cfg.name`` configured by ``cfg.config``.

    Args:
        cfg: a ``type: builtin`` tool config (``name``, ``description``, ``config``).
        search_path: the agents folder; a relative ``read_file`` root is taken from it.
        summariser: how ``text_summarize`` reaches the agent's model.
        guard: replaces ``http_get``'s SSRF guard (tests inject a fake resolver here).
        grants: what the agent may reach: the network builtins' guards and the file
            builtins' roots obey them.
        env: where ``send_slack`` and ``send_email`` find the operator's settings (already
            narrowed to what the agent may read).
        retriever_for / ingester_for: a RAGPipeline's query and ingest, by name, for
            ``rag_query`` and ``rag_ingest`` (see :mod:`astromesh.tools.factory`).
        cache: where ``cache_store`` keeps values (the runtime's; a process-local one
            when not given).

    Raises:
        ConfigurationError: unknown name, invalid ``config``, or a missing dependency.
    """
    from astromesh.tools.builtin._common import parse_config

    name, description, raw = cfg.name, cfg.description, dict(cfg.config)
    if name == "calculator":
        _no_config(name, raw)
        return _module("calculator").CalculatorTool(name, description)
    if name == "json_transform":
        _no_config(name, raw)
        return _module("json_transform").JsonTransformTool(name, description)
    if name in CLOCK_NAMES:
        clock = _module("current_time")
        config = parse_config(clock.CurrentTimeConfig, name, raw)
        return clock.CurrentTimeTool(name, description, config=config)
    if name == "http_get":
        from astromesh.tools.builtin.http_get import HttpGetConfig, HttpGetTool

        config = parse_config(HttpGetConfig, name, raw)
        guard = guard or grants.tool_guard(allow_private_network=config.allow_private_network)
        return HttpGetTool(name, description, config=config, guard=guard)
    if name in _GUARDED:
        module_name, model_name, class_name = _GUARDED[name]
        module = _module(module_name)
        model, tool_class = getattr(module, model_name), getattr(module, class_name)
        config = parse_config(model, name, raw)
        guard = guard or grants.tool_guard(allow_private_network=config.allow_private_network)
        return tool_class(name, description, config=config, guard=guard)
    if name == "read_file":
        from astromesh.tools.builtin.read_file import ReadFileConfig, ReadFileTool

        return ReadFileTool.from_config(
            parse_config(ReadFileConfig, name, raw),
            base=search_path,
            name=name,
            description=description,
            grants=grants,
        )
    if name == "send_slack":
        from astromesh.tools.builtin.notify import SendSlackConfig, SendSlackTool

        slack = parse_config(SendSlackConfig, name, raw)
        guard = guard or grants.tool_guard(allow_private_network=slack.allow_private_network)
        return SendSlackTool(name, description, config=slack, env=env, guard=guard)
    if name == "cache_store":
        from astromesh.tools.builtin.cache_store import (
            CacheStoreConfig,
            CacheStoreTool,
            MemoryToolCache,
        )

        return CacheStoreTool(
            name,
            description,
            cache=cache or MemoryToolCache(),
            config=parse_config(CacheStoreConfig, name, raw),
        )
    if name == "rag_query":
        from astromesh.tools.builtin.rag_tools import RagQueryConfig, build_rag_query

        return build_rag_query(
            name, description, parse_config(RagQueryConfig, name, raw), retriever_for
        )
    if name == "rag_ingest":
        from astromesh.tools.builtin.rag_tools import RagIngestConfig, RagIngestTool

        return RagIngestTool.from_config(
            name, description, parse_config(RagIngestConfig, name, raw), ingester_for
        )
    if name == "web_search":
        from astromesh.tools.builtin.search import WebSearchConfig, WebSearchTool

        search = parse_config(WebSearchConfig, name, raw)
        guard = guard or grants.tool_guard(allow_private_network=search.allow_private_network)
        return WebSearchTool(name, description, config=search, env=env, guard=guard)
    if name == "send_email":
        from astromesh.tools.builtin.notify import SendEmailConfig, SendEmailTool

        return SendEmailTool(
            name, description, config=parse_config(SendEmailConfig, name, raw), env=env
        )
    if name == "sql_query":
        from astromesh.tools.builtin.sql_query import SqlQueryConfig, SqlQueryTool

        config = parse_config(SqlQueryConfig, name, raw)
        grants.check_sql_dsn(config.connection_string, tool=name)
        return SqlQueryTool(name, description, config=config)
    if name == "write_file":
        from astromesh.tools.builtin.write_file import WriteFileConfig, WriteFileTool

        return WriteFileTool.from_config(
            parse_config(WriteFileConfig, name, raw),
            base=search_path,
            name=name,
            description=description,
            grants=grants,
        )
    if name == "text_summarize":
        from astromesh.tools.builtin.text_summarize import SummarizeConfig, TextSummarizeTool

        if summariser is None:
            raise ConfigurationError(
                "builtin tool 'text_summarize' needs the agent's model: build the registry "
                "with summariser=router_summariser(router)"
            )
        return TextSummarizeTool(
            summariser, name, description, config=parse_config(SummarizeConfig, name, raw)
        )
    raise ConfigurationError(f"unknown builtin tool {name!r}")


def _no_config(name: str, raw: dict[str, Any]) -> None:
    if raw:
        raise ConfigurationError(
            f"builtin tool {name!r} takes no config (got {', '.join(sorted(raw))})"
        )

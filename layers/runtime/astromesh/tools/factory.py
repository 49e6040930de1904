"""One place that turns a validated ``spec.tools[]`` entry into runnable tools.

- :func:`build_tool` builds every type that is one tool: ``builtin``, ``python``,
  ``webhook``, ``rag`` and ``client``.
- :func:`build_tools` (async) also covers ``mcp``, which becomes a pending
  :class:`~astromesh.tools.mcp.MCPToolset`: the server is connected, and expands into one
  tool per tool it offers, on first use, never here; use it from ``build_registry``.

Nothing here starts a process, opens a connection or resolves a name: building is also how
a document posted to ``POST /v1/agents`` is checked, and a refused document must have run
nothing. What the agent may reach is enforced later, where tools connect (``grants``).

``agent`` tools are not built here: they need the runtime's agent list and child runs, and
are built by the registry itself.

Dependencies are passed in, never looked up globally:

- ``search_path``: the agents folder (python handlers, relative ``read_file`` roots, the
  working folder of stdio MCP servers);
- ``summariser``: how ``text_summarize`` reaches the agent's model
  (:func:`astromesh.tools.builtin.router_summariser` over the agent's router);
- ``retriever_for``: ``pipeline name -> Retriever`` for ``rag`` tools and the ``rag_query``
  builtin (from ``astromesh.rag``); ``ingester_for`` likewise for ``rag_ingest``;
- ``cache``: the runtime's :class:`~astromesh.tools.builtin.cache_store.ToolCache` for
  ``cache_store``;
- ``env``: where ``secret_env`` values are read (the runtime's ``env``);
- ``exit_stack``: the registry's ``AsyncExitStack``; tools holding connections (webhook,
  http_get, MCP sessions) push their ``aclose`` onto it, so ``registry.aclose()`` releases
  everything;
- ``guard``: an SSRF guard for the outbound HTTP connections of the tools (webhook,
  http_get, MCP over streamable HTTP), replacing the ones ``grants`` give (tests inject a
  fake resolver this way);
- ``grants``: what the agent may use and reach (:mod:`astromesh.security.grants`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.tools.base import Tool, Toolset
from astromesh.tools.builtin import build_builtin
from astromesh.tools.client import ClientTool
from astromesh.tools.dry_run import DryRunTool, is_side_effecting
from astromesh.tools.python import PythonTool, import_handler
from astromesh.tools.rag import RagTool, Retriever

if TYPE_CHECKING:
    from astromesh.tools.builtin.cache_store import ToolCache
    from astromesh.tools.builtin.text_summarize import Summariser
    from astromesh.tools.ssrf import SSRFGuard

Ingester = Callable[[str, dict[str, Any], str], Awaitable[dict[str, Any]]]
"""``(document, metadata, doc_id_prefix) -> {"doc_id", "status", "chunks"}``: index a text."""

IngesterFactory = Callable[[str | None], tuple[str, Ingester]]
"""``pipeline name -> (pipeline, Ingester)`` for ``rag_ingest``, like :data:`RetrieverFactory`."""

RetrieverFactory = Callable[[str | None], tuple[str, Retriever]]
"""``pipeline name -> (pipeline, Retriever)``; ``None`` asks for the runtime's only pipeline.
Raises ``ConfigurationError`` for an unknown pipeline (or no single one to default to)."""


def build_tool(
    cfg: Any,
    *,
    search_path: Path | None = None,
    summariser: Summariser | None = None,
    retriever_for: RetrieverFactory | None = None,
    ingester_for: IngesterFactory | None = None,
    cache: ToolCache | None = None,
    env: Mapping[str, str] | None = None,
    guard: SSRFGuard | None = None,
    exit_stack: AsyncExitStack | None = None,
    grants: Grants = FILE_AGENT_GRANTS,
) -> Tool:
    """The tool for one config of type builtin, python, webhook, rag or client.

    Args:
        guard: replaces the SSRF guard of webhook and http_get tools (tests use it to
            inject a fake resolver); by default each tool gets one honouring its
            ``allow_private_network`` within ``grants``.
        grants: what the agent may use (tool types, hosts, file roots); see
            :mod:`astromesh.security.grants`.

    Raises:
        ConfigurationError: anything that makes the tool unusable (a handler that does not
            import, a missing secret, an unknown pipeline, an ``mcp`` or ``agent`` config,
            which this function does not build). Raised when the agent is built.
    """
    grants.check_tool_type(cfg.type, tool=cfg.name)
    tool = _build(
        cfg,
        search_path=search_path,
        summariser=summariser,
        retriever_for=retriever_for,
        ingester_for=ingester_for,
        cache=cache,
        env=os.environ if env is None else env,
        guard=guard,
        grants=grants,
    )
    if grants.dry_run and is_side_effecting(cfg):
        tool = DryRunTool(tool)
    closer = getattr(tool, "aclose", None)
    if exit_stack is not None and closer is not None:
        exit_stack.push_async_callback(closer)
    return tool


async def build_tools(
    cfg: Any,
    *,
    exit_stack: AsyncExitStack,
    search_path: Path | None = None,
    summariser: Summariser | None = None,
    retriever_for: RetrieverFactory | None = None,
    ingester_for: IngesterFactory | None = None,
    cache: ToolCache | None = None,
    env: Mapping[str, str] | None = None,
    guard: SSRFGuard | None = None,
    grants: Grants = FILE_AGENT_GRANTS,
) -> list[Tool | Toolset]:
    """The tools of one config of any type but ``agent``; an ``mcp`` config gives a
    :class:`~astromesh.tools.base.Toolset` that connects on first use.

    Args:
        guard: see the module docstring; for MCP over HTTP it replaces the guard of the
            ``grants`` (:meth:`~astromesh.security.grants.Grants.mcp_guard`); with neither,
            the configured URL is connected to as it is (a file agent's operator wrote it).

    Raises:
        ConfigurationError: as :func:`build_tool`. An MCP server that cannot be reached,
            or an ``allowed_tools`` entry it does not offer, is reported at first use.
    """
    if cfg.type == "mcp":
        from astromesh.tools.mcp import MCPToolset

        grants.check_mcp(cfg)  # a registered agent's stdio server is refused here, built or not
        toolset = MCPToolset(
            cfg, cwd=search_path, guard=guard or grants.mcp_guard(), dry_run=grants.dry_run
        )
        exit_stack.push_async_callback(toolset.aclose)
        return [toolset]
    return [
        build_tool(
            cfg,
            search_path=search_path,
            summariser=summariser,
            retriever_for=retriever_for,
            ingester_for=ingester_for,
            cache=cache,
            env=env,
            guard=guard,
            exit_stack=exit_stack,
            grants=grants,
        )
    ]


def _build(
    cfg: Any,
    *,
    search_path: Path | None,
    summariser: Summariser | None,
    retriever_for: RetrieverFactory | None,
    ingester_for: IngesterFactory | None = None,
    cache: ToolCache | None = None,
    env: Mapping[str, str],
    guard: SSRFGuard | None,
    grants: Grants,
) -> Tool:
    kind = cfg.type
    if kind == "builtin":
        return build_builtin(
            cfg,
            search_path=search_path,
            summariser=summariser,
            guard=guard,
            grants=grants,
            env=env,
            retriever_for=retriever_for,
            ingester_for=ingester_for,
            cache=cache,
        )
    if kind == "python":
        return PythonTool(
            cfg.name,
            import_handler(cfg.handler, search_path=search_path),
            description=cfg.description or None,
            parameters=cfg.json_schema() if cfg.parameters else None,
        )
    if kind == "webhook":
        from astromesh.tools.webhook import WebhookTool  # httpx: only for agents with webhooks

        guard = guard or grants.tool_guard(allow_private_network=cfg.allow_private_network)
        return WebhookTool.from_config(cfg, env=env, guard=guard)
    if kind == "rag":
        if retriever_for is None:
            raise ConfigurationError(
                f"tool {cfg.name!r}: rag tools need a retriever for pipeline "
                f"{cfg.pipeline!r}, and none is wired into this runtime yet"
            )
        pipeline, retriever = retriever_for(cfg.pipeline)
        return RagTool(
            cfg.name,
            pipeline=pipeline,
            retriever=retriever,
            top_k=cfg.top_k,
            description=cfg.description,
            parameters=cfg.json_schema(),
        )
    if kind == "client":
        return ClientTool(cfg.name, description=cfg.description, parameters=cfg.json_schema())
    if kind == "mcp":
        raise ConfigurationError(
            f"tool {cfg.name!r}: mcp tools connect to a server; build them with build_tools()"
        )
    raise ConfigurationError(
        f"tool {cfg.name!r}: type {kind!r} is not built by the tool factory"
        + (" (agent tools are built by the registry)" if kind == "agent" else "")
    )

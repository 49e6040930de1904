"""One place that turns a validated ``spec.tools[]`` entry into runnable tools.

- :func:`build_tool` builds every type that is one tool: ``builtin``, ``python``,
  ``webhook``, ``rag`` and ``client``.
- :func:`build_tools` (async) also covers ``mcp``, which connects to a server and expands
  into one tool per tool the server offers; use it from ``build_registry``.

``agent`` tools are not built here: they need the runtime's agent list and child runs, and
are built by the registry itself.

Dependencies are passed in, never looked up globally:

- ``search_path``: the agents folder (python handlers, relative ``read_file`` roots, the
  working folder of stdio MCP servers);
- ``summariser``: how ``text_summarize`` reaches the agent's model
  (:func:`astromesh.tools.builtin.router_summariser` over the agent's router);
- ``retriever_for``: ``pipeline name -> Retriever`` for ``rag`` tools (from ``astromesh.rag``);
- ``env``: where ``secret_env`` values are read (the runtime's ``env``);
- ``exit_stack``: the registry's ``AsyncExitStack``; tools holding connections (webhook,
  http_get, MCP sessions) push their ``aclose`` onto it, so ``registry.aclose()`` releases
  everything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from astromesh.errors import ConfigurationError
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.tools.base import Tool
from astromesh.tools.builtin import Summariser, build_builtin
from astromesh.tools.client import ClientTool
from astromesh.tools.dry_run import DryRunTool, is_side_effecting
from astromesh.tools.python import PythonTool, import_handler
from astromesh.tools.rag import RagTool, Retriever
from astromesh.tools.ssrf import SSRFGuard
from astromesh.tools.webhook import WebhookTool

RetrieverFactory = Callable[[str], Retriever]
"""``pipeline name -> Retriever``; raises ``ConfigurationError`` for an unknown pipeline."""


def build_tool(
    cfg: Any,
    *,
    search_path: Path | None = None,
    summariser: Summariser | None = None,
    retriever_for: RetrieverFactory | None = None,
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
    env: Mapping[str, str] | None = None,
    guard: SSRFGuard | None = None,
    grants: Grants = FILE_AGENT_GRANTS,
) -> list[Tool]:
    """The tools of one config of any type but ``agent``: MCP servers give several.

    Raises:
        ConfigurationError: as :func:`build_tool`; for MCP also a server that cannot be
            reached or an ``allowed_tools`` entry it does not offer.
    """
    if cfg.type == "mcp":
        from astromesh.tools.mcp import connect_mcp

        grants.check_mcp(cfg)
        tools = await connect_mcp(cfg, exit_stack=exit_stack, cwd=search_path)
        return [DryRunTool(t) for t in tools] if grants.dry_run else tools
    return [
        build_tool(
            cfg,
            search_path=search_path,
            summariser=summariser,
            retriever_for=retriever_for,
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
    env: Mapping[str, str],
    guard: SSRFGuard | None,
    grants: Grants,
) -> Tool:
    kind = cfg.type
    if kind == "builtin":
        return build_builtin(
            cfg, search_path=search_path, summariser=summariser, guard=guard, grants=grants
        )
    if kind == "python":
        return PythonTool(
            cfg.name,
            import_handler(cfg.handler, search_path=search_path),
            description=cfg.description or None,
            parameters=cfg.json_schema() if cfg.parameters else None,
        )
    if kind == "webhook":
        guard = guard or grants.tool_guard(allow_private_network=cfg.allow_private_network)
        return WebhookTool.from_config(cfg, env=env, guard=guard)
    if kind == "rag":
        if retriever_for is None:
            raise ConfigurationError(
                f"tool {cfg.name!r}: rag tools need a retriever for pipeline "
                f"{cfg.pipeline!r}, and none is wired into this runtime yet"
            )
        return RagTool(
            cfg.name,
            pipeline=cfg.pipeline,
            retriever=retriever_for(cfg.pipeline),
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

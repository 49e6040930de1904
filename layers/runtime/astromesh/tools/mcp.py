"""MCP tools: the tools of a Model Context Protocol server, through the official ``mcp`` SDK.

YAML (``type: mcp``): ``transport: stdio`` with ``command``, ``args``, ``env`` (the server
is started as a subprocess, in the agents folder, with only ``env`` and the SDK's safe
defaults such as ``PATH`` in its environment), or ``transport: streamable_http`` with
``url`` and ``headers``. ``allowed_tools`` restricts which of the server's tools the agent
gets; naming a tool the server does not list is a configuration error (a typo would
otherwise silently remove a tool).

At start-up (:func:`connect_mcp`, awaited when the registry is built) the server is
connected and its tools listed; each becomes an :class:`MCPServerTool` under the name the
server gives it (as upstream Astromesh does, so ``allowed_actions`` uses those names).
Calls are sent by name over the one session. A server error, an ``isError`` result, a
timeout or a lost connection becomes a failed ``ToolResult`` the model can read.

Why a task owns each session: the SDK's transports are anyio task groups, which must be
exited by the task that entered them, while the runtime may close an agent from another
task (a server's shutdown hook). So :class:`MCPConnection` opens the session inside a
background task that holds it in an ``AsyncExitStack`` until :meth:`MCPConnection.aclose`
asks it to stop; ``connect_mcp`` pushes that ``aclose`` onto the registry's exit stack,
so ``ToolRegistry.aclose()`` ends every session and subprocess.

The ``mcp`` package is an extra (``pip install 'astromesh[mcp]'``) imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.config.constants import TOOL_NAME_RE
from astromesh.errors import ConfigurationError, ToolError
from astromesh.tools.base import Tool, ToolContext

if TYPE_CHECKING:
    import mcp
    import mcp_types

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 60.0
MAX_LIST_PAGES = 50


class MCPToolFailed(ToolError):
    """The MCP server reported the call as failed (``isError``) or the session is gone."""

    code = "mcp_tool_failed"


def _sdk() -> Any:
    try:
        import mcp
    except ImportError:
        raise ConfigurationError(
            "MCP tools need the official MCP SDK: pip install 'astromesh[mcp]'"
        ) from None
    return mcp


class MCPConnection:
    """One MCP server session, opened and closed by one background task.

    Args:
        name: the tool config's name (for messages and logs).
        cfg: the ``type: mcp`` config.
        cwd: working folder of a stdio server (the agents folder).
        call_timeout: seconds a single tool call may take.
    """

    def __init__(
        self,
        name: str,
        cfg: Any,
        *,
        cwd: Path | None = None,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.cwd = cwd
        self.call_timeout = call_timeout
        self._client: mcp.Client | None = None
        self._ready: asyncio.Future[list[mcp_types.Tool]] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lost: BaseException | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def start(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> list[mcp_types.Tool]:
        """Connect, list every tool (all pages) and return them.

        Raises:
            ConfigurationError: the server could not be started, reached or listed in time.
        """
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(), name=f"mcp:{self.name}")
        try:
            return await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except Exception as exc:
            await self.aclose(timeout=0.0)
            reason = (
                f"no answer within {timeout:g}s"
                if isinstance(exc, TimeoutError)
                else _describe(exc)
            )
            raise ConfigurationError(
                f"tool {self.name!r}: cannot connect to the MCP server ({self._where()}): {reason}"
            ) from exc

    async def _own(self) -> None:
        """The session's whole life, in this one task."""
        assert self._ready is not None
        try:
            async with AsyncExitStack() as stack:
                client = await self._open(stack)
                tools = await _list_all(client)
                self._client = client
                self._ready.set_result(tools)
                await self._stop.wait()
        except asyncio.CancelledError:
            if not self._ready.done():
                self._ready.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - reported to start() or kept as the reason
            if not self._ready.done():
                self._ready.set_exception(exc)
            else:
                logger.warning("mcp=<%s> | session ended: %r", self.name, exc)
                self._lost = exc
        finally:
            self._client = None

    async def _open(self, stack: AsyncExitStack) -> mcp.Client:
        mcp = _sdk()
        cfg = self.cfg
        if cfg.transport == "stdio":
            server: Any = mcp.StdioServerParameters(
                command=cfg.command,
                args=list(cfg.args),
                env=dict(cfg.env) or None,
                cwd=self.cwd,
            )
        else:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=dict(cfg.headers),
                    timeout=httpx2.Timeout(30.0, read=max(self.call_timeout, 30.0)),
                )
            )
            server = streamable_http_client(cfg.url, http_client=http)
        client = mcp.Client(server, read_timeout_seconds=self.call_timeout)
        return await stack.enter_async_context(client)  # type: ignore[no-any-return]

    async def call(self, tool: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        """Call ``tool`` on the server.

        Raises:
            MCPToolFailed: the session is not (or no longer) open.
            TimeoutError: no answer within ``call_timeout``.
        """
        client = self._client
        if client is None:
            reason = f": {_describe(self._lost)}" if self._lost else ""
            raise MCPToolFailed(f"MCP server {self.name!r} is not connected{reason}")
        return await asyncio.wait_for(client.call_tool(tool, arguments), self.call_timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        """End the session (and stop a stdio server); safe to call more than once."""
        self._stop.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            if not task.cancelled():  # we are being cancelled, not the session task
                raise

    def _where(self) -> str:
        if self.cfg.transport == "stdio":
            return " ".join([self.cfg.command, *self.cfg.args])
        return str(self.cfg.url)


class MCPServerTool(Tool):
    """One tool of an MCP server, called by name over the shared connection."""

    def __init__(self, connection: MCPConnection, remote: mcp_types.Tool) -> None:
        self.connection = connection
        self.remote_name = remote.name
        schema = dict(remote.input_schema or {})
        schema.setdefault("type", "object")
        schema.pop("title", None)
        super().__init__(
            name=remote.name,
            description=remote.description or remote.title or remote.name,
            parameters=schema,
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        try:
            result = await self.connection.call(self.remote_name, arguments)
        except TimeoutError:
            raise MCPToolFailed(
                f"MCP server {self.connection.name!r} gave no answer within "
                f"{self.connection.call_timeout:g}s"
            ) from None
        text = render_content(result.content)
        if result.is_error:
            raise MCPToolFailed(text or "the MCP server reported an error")
        if result.content or result.structured_content is None:
            return text
        return result.structured_content


def render_content(blocks: list[Any]) -> str:
    """MCP content blocks as text for the model; binary blocks become short placeholders."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.mime_type}]")
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
    return "\n".join(parts)


async def _list_all(client: mcp.Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def select_tools(name: str, listed: list[mcp_types.Tool], allowed: list[str] | None) -> list[Any]:
    """The listed tools the agent gets: those in ``allowed`` (all when ``None``), valid names.

    Raises:
        ConfigurationError: ``allowed`` names a tool the server does not list.
    """
    by_name = {tool.name: tool for tool in listed}
    if allowed is not None:
        missing = [tool for tool in allowed if tool not in by_name]
        if missing:
            offered = ", ".join(sorted(by_name)) or "none"
            raise ConfigurationError(
                f"tool {name!r}: allowed_tools names {', '.join(missing)}, which the MCP "
                f"server does not offer (it offers: {offered})"
            )
    chosen = []
    for tool in listed:
        if allowed is not None and tool.name not in allowed:
            continue
        if not TOOL_NAME_RE.match(tool.name):
            logger.warning("mcp=<%s> | skipping tool %r: not a valid tool name", name, tool.name)
            continue
        chosen.append(tool)
    return chosen


async def connect_mcp(
    cfg: Any,
    *,
    exit_stack: AsyncExitStack,
    cwd: Path | None = None,
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    call_timeout: float = CALL_TIMEOUT_SECONDS,
) -> list[Tool]:
    """Connect to the server of a ``type: mcp`` config and return one tool per served tool.

    The connection's ``aclose`` is pushed onto ``exit_stack`` (the registry's), also when
    listing fails half-way, so nothing is left running.

    Raises:
        ConfigurationError: the SDK is missing, the server cannot be reached, or
            ``allowed_tools`` names a tool the server does not offer.
    """
    _sdk()
    connection = MCPConnection(cfg.name, cfg, cwd=cwd, call_timeout=call_timeout)
    listed = await connection.start(startup_timeout)
    exit_stack.push_async_callback(connection.aclose)
    chosen = select_tools(cfg.name, listed, cfg.allowed_tools)
    return [MCPServerTool(connection, tool) for tool in chosen]


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown reason"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

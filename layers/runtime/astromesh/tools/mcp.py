"""MCP tools: the tools of a Model Context Protocol server, through the official ``mcp`` SDK.

YAML (``type: mcp``): ``transport: stdio`` with ``command``, ``args``, ``env`` (the server
is started as a subprocess, in the agents folder, with only ``env`` and the SDK's safe
defaults such as ``PATH`` in its environment), or ``transport: streamable_http`` with
``url`` and ``headers``. ``allowed_tools`` restricts which of the server's tools the agent
gets; naming a tool the server does not list is an error (a typo would otherwise silently
remove a tool), reported when the server is first connected.

Nothing happens when the agent is built. Building is also how a posted document is checked
(``POST /v1/agents``), so it must not start a command or open a connection the document
chose: a ``type: mcp`` config becomes an :class:`MCPToolset`, which the registry loads on
first use (:meth:`~astromesh.tools.registry.ToolRegistry.ensure_ready`: the first run's
prepare or step, a tool call in the Step Functions tool executor, ``GET /v1/tools``), once
for concurrent first uses. Loading connects, lists the server's tools and makes each an
:class:`MCPServerTool` under the name the server gives it (as upstream Astromesh does, so
``allowed_actions`` uses those names). A server that cannot be started or reached fails
that run with :class:`~astromesh.tools.base.ToolsetUnavailable`; the next run tries again.
Calls are sent by name over the one session. A server error, an ``isError`` result, a
timeout or a lost connection becomes a failed ``ToolResult`` the model can read.

Over streamable HTTP an :class:`~astromesh.tools.ssrf.SSRFGuard` may be given: every
connection (the SDK's same-origin redirects included) is then resolved, checked and pinned
by it (:func:`~astromesh.tools.ssrf.guarded_mcp_http_client`). Without one, the server's URL
is connected to as configured (agents written by the operator).

Why a task owns each session: the SDK's transports are anyio task groups, which must be
exited by the task that entered them, while the runtime may close an agent from another
task (a server's shutdown hook). So :class:`MCPConnection` opens the session inside a
background task that holds it in an ``AsyncExitStack`` until :meth:`MCPConnection.aclose`
asks it to stop; the registry's exit stack holds :meth:`MCPToolset.aclose`, so
``ToolRegistry.aclose()`` ends every session and subprocess (one still connecting too).

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
from astromesh.tools.base import Tool, ToolContext, ToolsetUnavailable
from astromesh.tools.ssrf import SSRFGuard

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
        guard: checks every HTTP connection of a ``streamable_http`` server (``None``: the
            URL is connected to as configured).
    """

    def __init__(
        self,
        name: str,
        cfg: Any,
        *,
        cwd: Path | None = None,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.cwd = cwd
        self.call_timeout = call_timeout
        self.guard = guard
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
            ToolsetUnavailable: the server could not be started, reached or listed in time
                (or the guard refused its address).
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
            raise ToolsetUnavailable(
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

            timeout = httpx2.Timeout(30.0, read=max(self.call_timeout, 30.0))
            if self.guard is not None:
                from astromesh.tools.ssrf import guarded_mcp_http_client

                client = guarded_mcp_http_client(
                    self.guard, headers=dict(cfg.headers), timeout=timeout
                )
            else:
                client = httpx2.AsyncClient(headers=dict(cfg.headers), timeout=timeout)
            http = await stack.enter_async_context(client)
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


class MCPToolset:
    """The tools of one ``type: mcp`` config, connected on first use (see the module docstring).

    :meth:`load` opens a fresh :class:`MCPConnection` per attempt (a failed one is closed,
    so a later run starts clean); the registry serialises loads, so there is at most one.

    Args:
        cfg: the ``type: mcp`` config.
        cwd: working folder of a stdio server (the agents folder).
        guard: see :class:`MCPConnection`.
        dry_run: the tools only describe their calls
            (:class:`~astromesh.tools.dry_run.DryRunTool`); the server is still connected,
            to list them.
        startup_timeout / call_timeout: seconds to connect and list; seconds per call.
    """

    def __init__(
        self,
        cfg: Any,
        *,
        cwd: Path | None = None,
        guard: SSRFGuard | None = None,
        dry_run: bool = False,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        _sdk()  # a missing extra is a configuration error of the build (an import, no process)
        self.name: str = cfg.name
        self.cfg = cfg
        self.cwd = cwd
        self.guard = guard
        self.dry_run = dry_run
        self.startup_timeout = startup_timeout
        self.call_timeout = call_timeout
        self.connection: MCPConnection | None = None
        self.attempts = 0
        """Connections tried so far (tests and logs)."""
        self._closed = False

    async def load(self) -> list[Tool]:
        """Connect, list and select the server's tools.

        Raises:
            ToolsetUnavailable: the server cannot be started or reached, or this toolset
                was closed.
            ConfigurationError: ``allowed_tools`` names a tool the server does not offer
                (the connection is closed again).
        """
        if self._closed:
            raise ToolsetUnavailable(f"tool {self.name!r}: the agent was closed")
        self.attempts += 1
        connection = MCPConnection(
            self.name, self.cfg, cwd=self.cwd, call_timeout=self.call_timeout, guard=self.guard
        )
        self.connection = connection
        try:
            listed = await connection.start(self.startup_timeout)
            if self._closed:  # closed while connecting: do not hand out a live session
                raise ToolsetUnavailable(f"tool {self.name!r}: the agent was closed")
            chosen = select_tools(self.name, listed, self.cfg.allowed_tools)
        except BaseException:
            await connection.aclose()
            if self.connection is connection:
                self.connection = None
            raise
        logger.info("mcp=<%s> | connected: %d tool(s)", self.name, len(chosen))
        tools: list[Tool] = [MCPServerTool(connection, tool) for tool in chosen]
        if self.dry_run:
            from astromesh.tools.dry_run import DryRunTool

            return [DryRunTool(tool) for tool in tools]
        return tools

    async def discard(self) -> None:
        """End the session of the last load (its tools are not used); loads stay allowed."""
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.aclose()

    async def aclose(self) -> None:
        """End the session (and stop a stdio server), also one still connecting."""
        self._closed = True
        await self.discard()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown reason"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

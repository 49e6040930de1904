"""Per-agent tool registry: which tools exist, which the agent may use, and dispatch.

Permissions are enforced here, once: a tool outside ``spec.permissions.allowed_actions`` is
never offered to the model, and a forged call to it is refused (and recorded by the caller).

Toolsets (an MCP server's tools, see :class:`~astromesh.tools.base.Toolset`) are held
pending until first use: building an agent starts nothing and connects to nothing, since
building is also how a posted document is checked. :meth:`ToolRegistry.ensure_ready` loads
them, and every place that reads the tool list or dispatches a call first awaits it:

- :func:`astromesh.pipeline.prepare` and :func:`astromesh.pipeline.step` (the first run, or
  the first stage of a run in a fresh Lambda container); a failure fails the run;
- :meth:`ToolRegistry.call` for a name it does not know yet (the Step Functions tool
  executor, whose container may not have loaded them); a failure is the call's result;
- ``StepDriver.observe`` (to record whether each call was permitted) and ``GET /v1/tools``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astromesh.errors import AstromeshError, ConfigurationError
from astromesh.models.types import ToolCall, ToolDefinition
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.tools.agent import AgentTool
from astromesh.tools.base import Tool, ToolContext, ToolResult, Toolset, ToolsetUnavailable
from astromesh.tools.factory import IngesterFactory, RetrieverFactory, build_tools

if TYPE_CHECKING:
    from astromesh.tools.builtin.cache_store import ToolCache
    from astromesh.tools.builtin.text_summarize import Summariser

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    """A toolset not loaded yet, and where its tools go in the registry's order."""

    toolset: Toolset
    position: int
    """How many tools precede it (its tools are inserted there, keeping the config order)."""
    always_allowed: bool


class ToolRegistry:
    """The tools one agent can see.

    Tools added with ``always_allowed`` (the agent tools an orchestration pattern needs to
    call its own stages or workers) are permitted whatever ``allowed_actions`` says: the
    pattern's configuration already names them, so refusing them would only break the run.
    """

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        *,
        allowed: Iterable[str] | None = None,
        exit_stack: AsyncExitStack | None = None,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._allowed = None if allowed is None else frozenset(allowed)
        self._always: set[str] = set()
        self._exit_stack = exit_stack or AsyncExitStack()
        self._pending: list[_Pending] = []
        self._loading: asyncio.Task[None] | None = None
        self._closed = False
        for tool in tools:
            self.add(tool)

    async def aclose(self) -> None:
        """Release what the tools hold: MCP sessions (and stdio servers), HTTP pools."""
        self._closed = True
        await self._exit_stack.aclose()

    # -- toolsets (loaded on first use) ----------------------------------------------------

    def add_toolset(self, toolset: Toolset, *, always_allowed: bool = False) -> None:
        """Register tools that are loaded by :meth:`ensure_ready`, not now.

        Whoever built ``toolset`` owns its closing (the factory pushes its ``aclose`` onto
        this registry's exit stack).
        """
        self._pending.append(_Pending(toolset, len(self._tools), always_allowed))

    @property
    def pending(self) -> list[str]:
        """The names of the toolsets not loaded yet (their tools are not listed yet)."""
        return [slot.toolset.name for slot in self._pending]

    async def ensure_ready(self) -> None:
        """Load every pending toolset (connect its MCP server), once.

        Concurrent callers share one attempt (a caller cancelled meanwhile, its run timed
        out, does not cancel the others'). A failed toolset stays pending and the next call
        tries again: a server that was down for one run is not given up on for good.

        Raises:
            ToolsetUnavailable: a toolset could not be loaded (its reason in the message).
            ConfigurationError: what a toolset found wrong with its config once connected
                (an ``allowed_tools`` entry the server does not offer, a name used twice).
        """
        if not self._pending:
            return
        if self._closed:
            raise ToolsetUnavailable(
                f"tools {', '.join(self.pending)} cannot be loaded: the agent was closed"
            )
        loop = asyncio.get_running_loop()
        task = self._loading
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._loading = loop.create_task(self._load_pending(), name="tools:load")
            task.add_done_callback(_retrieve)
        await asyncio.shield(task)

    async def _load_pending(self) -> None:
        """Load the pending toolsets concurrently; keep the ones that loaded."""
        slots = list(self._pending)
        outcomes = await asyncio.gather(
            *(slot.toolset.load() for slot in slots), return_exceptions=True
        )
        errors: list[AstromeshError] = []
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):  # its session was closed meanwhile
                errors.append(
                    ToolsetUnavailable(f"tool {slot.toolset.name!r}: loading was cancelled")
                )
                continue
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # KeyboardInterrupt, SystemExit
                errors.append(_as_error(slot.toolset, outcome))
                continue
            try:
                self._insert(slot, outcome)
            except ConfigurationError as exc:
                await slot.toolset.discard()  # its tools cannot be used; a later run retries
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            message = "; ".join(e.message for e in errors)
            if all(isinstance(e, ConfigurationError) for e in errors):
                raise ConfigurationError(message)
            raise ToolsetUnavailable(message)

    def _insert(self, slot: _Pending, tools: Sequence[Tool]) -> None:
        """Put a loaded toolset's tools where its config stands, and drop it from pending.

        Raises:
            ConfigurationError: one of its names is already registered.
        """
        names = [tool.name for tool in tools]
        taken = [name for name in names if name in self._tools]
        duplicated = {name for name in names if names.count(name) > 1}
        if taken or duplicated:
            raise ConfigurationError(
                f"tool {slot.toolset.name!r}: tool name(s) "
                f"{', '.join(sorted({*taken, *duplicated}))} are used twice"
            )
        items = list(self._tools.items())
        items[slot.position : slot.position] = [(tool.name, tool) for tool in tools]
        self._tools = dict(items)
        if slot.always_allowed:
            self._always.update(names)
        index = self._pending.index(slot)
        del self._pending[index]
        for later in self._pending[index:]:
            later.position += len(tools)

    def __len__(self) -> int:
        return len(self.available())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def add(self, tool: Tool, *, always_allowed: bool = False) -> None:
        """Register one more tool.

        Raises:
            ConfigurationError: a tool of that name is already registered.
        """
        if tool.name in self._tools:
            raise ConfigurationError(f"tool name {tool.name!r} is used twice")
        self._tools[tool.name] = tool  # after every pending toolset's place: order kept
        if always_allowed:
            self.permit(tool.name)

    def permit(self, name: str) -> None:
        """Allow ``name`` whatever ``allowed_actions`` says (a tool a pattern must call)."""
        self._always.add(name)

    def agent_tool(self, agent_name: str) -> AgentTool | None:
        """The tool that calls ``agent_name`` (the one named after it first), if any."""
        named = self._tools.get(agent_name)
        if isinstance(named, AgentTool) and named.agent_name == agent_name:
            return named
        for tool in self._tools.values():
            if isinstance(tool, AgentTool) and tool.agent_name == agent_name:
                return tool
        return None

    def is_allowed(self, name: str) -> bool:
        return name in self._tools and (
            self._allowed is None or name in self._allowed or name in self._always
        )

    def available(self) -> list[Tool]:
        return [tool for name, tool in self._tools.items() if self.is_allowed(name)]

    def definitions(self) -> list[ToolDefinition]:
        return [tool.definition for tool in self.available()]

    async def call(self, call: ToolCall, context: ToolContext) -> ToolResult:
        """Run one call; unknown or forbidden tools give a refusal the model can read.

        A name not known yet loads the pending toolsets first (in a process that has not
        used them yet, such as the Step Functions tool executor); if they cannot be loaded,
        the call's result says why.
        """
        if call.name not in self._tools and self._pending:
            try:
                await self.ensure_ready()
            except AstromeshError as exc:
                if call.name not in self._tools:
                    return ToolResult(
                        ok=False, content=f"tool '{call.name}' is not available: {exc.message}"
                    )
        if call.name not in self._tools:
            known = ", ".join(sorted(t.name for t in self.available())) or "none"
            return ToolResult(
                ok=False, content=f"unknown tool '{call.name}'; available tools: {known}"
            )
        if not self.is_allowed(call.name):
            return ToolResult(
                ok=False, content=f"tool '{call.name}' is not permitted for this agent"
            )
        return await self._tools[call.name].call(call.arguments, context)


async def build_registry(
    tool_configs: Sequence[Any],
    *,
    allowed_actions: Sequence[str] | None,
    search_path: Path | None = None,
    known_agents: Collection[str] | None = None,
    summariser: Summariser | None = None,
    retriever_for: RetrieverFactory | None = None,
    ingester_for: IngesterFactory | None = None,
    cache: ToolCache | None = None,
    env: Mapping[str, str] | None = None,
    grants: Grants = FILE_AGENT_GRANTS,
) -> ToolRegistry:
    """Instantiate an agent's ``spec.tools``; MCP servers are registered as pending
    toolsets, connected on first use (:meth:`ToolRegistry.ensure_ready`), never here.

    Args:
        known_agents: the agents an ``agent`` tool may name; ``None`` skips the check.
        summariser / retriever_for / ingester_for / cache / env: see :mod:`astromesh.tools.factory`.
        grants: what the agent may use (:mod:`astromesh.security.grants`); a tool outside
            them is a configuration error, and tools connect and read within them.

    Raises:
        ConfigurationError: a tool cannot be built (see ``build_tool``), an agent tool names
            an unknown agent, or two tools share a name. Raised when the agent is built, not
            in the middle of a run; whatever was opened before the error is closed.
    """
    stack = AsyncExitStack()
    try:
        registry = ToolRegistry(allowed=allowed_actions, exit_stack=stack)
        for index, cfg in enumerate(tool_configs):
            try:
                await _add_tool(
                    registry,
                    cfg,
                    stack,
                    known_agents=known_agents,
                    search_path=search_path,
                    summariser=summariser,
                    retriever_for=retriever_for,
                    ingester_for=ingester_for,
                    cache=cache,
                    env=env,
                    grants=grants,
                )
            except ConfigurationError as exc:  # point at the tool's entry in the document
                exc.at_field(f"spec.tools.{index}")
                raise
    except BaseException:
        await stack.aclose()
        raise
    return registry


async def _add_tool(
    registry: ToolRegistry,
    cfg: Any,
    stack: AsyncExitStack,
    *,
    known_agents: Collection[str] | None,
    search_path: Path | None,
    summariser: Summariser | None,
    retriever_for: RetrieverFactory | None,
    ingester_for: IngesterFactory | None,
    cache: ToolCache | None,
    env: Mapping[str, str] | None,
    grants: Grants,
) -> None:
    """Build one ``spec.tools`` entry into ``registry`` (see :func:`build_registry`)."""
    if cfg.type == "agent":
        grants.check_tool_type("agent", tool=cfg.name)
        if known_agents is not None:
            check_agent_name(cfg.agent, known_agents, where=f"tool {cfg.name!r}")
        registry.add(
            AgentTool(
                cfg.name,
                cfg.agent,
                description=cfg.description or None,
                parameters=cfg.json_schema(),
                context_transform=cfg.context_transform,
            )
        )
        return
    for built in await build_tools(
        cfg,
        exit_stack=stack,
        search_path=search_path,
        summariser=summariser,
        retriever_for=retriever_for,
        ingester_for=ingester_for,
        cache=cache,
        env=env,
        grants=grants,
    ):
        if isinstance(built, Tool):
            registry.add(built)
        else:
            registry.add_toolset(built)


def check_agent_name(name: str, known_agents: Collection[str], *, where: str) -> None:
    """Refuse a reference to an agent that no valid document defines, naming the nearest one.

    Raises:
        ConfigurationError: ``name`` is not in ``known_agents``.
    """
    if name in known_agents:
        return
    hint = get_close_matches(name, list(known_agents), n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    known = ", ".join(sorted(known_agents)) or "none"
    raise ConfigurationError(
        f"{where}: agent {name!r} is not defined{suggestion} (known agents: {known})"
    )


def _as_error(toolset: Toolset, exc: Exception) -> AstromeshError:
    """What a failed load reports: its own error when it is one of ours, else a clear one."""
    if isinstance(exc, AstromeshError):
        return exc
    logger.warning("toolset=<%s> | loading failed: %r", toolset.name, exc)
    return ToolsetUnavailable(
        f"tool {toolset.name!r} cannot be loaded: {type(exc).__name__}: {exc}"
    )


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a load's outcome as seen: its callers may all have been cancelled meanwhile."""
    if not task.cancelled():
        task.exception()

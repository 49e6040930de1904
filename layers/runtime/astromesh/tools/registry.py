"""Per-agent tool registry: which tools exist, which the agent may use, and dispatch.

Permissions are enforced here, once: a tool outside ``spec.permissions.allowed_actions`` is
never offered to the model, and a forged call to it is refused (and recorded by the caller).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from astromesh.errors import ConfigurationError
from astromesh.models.types import ToolCall, ToolDefinition
from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.tools.agent import AgentTool
from astromesh.tools.base import Tool, ToolContext, ToolResult
from astromesh.tools.builtin import Summariser
from astromesh.tools.factory import RetrieverFactory, build_tools


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
        for tool in tools:
            self.add(tool)

    async def aclose(self) -> None:
        """Release what the tools hold: MCP sessions (and stdio servers), HTTP pools."""
        await self._exit_stack.aclose()

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
        self._tools[tool.name] = tool
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
        """Run one call; unknown or forbidden tools give a refusal the model can read."""
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
    env: Mapping[str, str] | None = None,
    grants: Grants = FILE_AGENT_GRANTS,
) -> ToolRegistry:
    """Instantiate an agent's ``spec.tools`` (MCP servers are connected and listed here).

    Args:
        known_agents: the agents an ``agent`` tool may name; ``None`` skips the check.
        summariser / retriever_for / env: see :mod:`astromesh.tools.factory`.
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
        for cfg in tool_configs:
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
                    )
                )
                continue
            for tool in await build_tools(
                cfg,
                exit_stack=stack,
                search_path=search_path,
                summariser=summariser,
                retriever_for=retriever_for,
                env=env,
                grants=grants,
            ):
                registry.add(tool)
    except BaseException:
        await stack.aclose()
        raise
    return registry


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

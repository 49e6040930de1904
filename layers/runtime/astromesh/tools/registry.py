"""Per-agent tool registry: which tools exist, which the agent may use, and dispatch.

Permissions are enforced here, once: a tool outside ``spec.permissions.allowed_actions`` is
never offered to the model, and a forged call to it is refused (and recorded by the caller).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from astromesh.errors import ConfigurationError
from astromesh.models.types import ToolCall, ToolDefinition
from astromesh.tools.base import Tool, ToolContext, ToolResult
from astromesh.tools.python import PythonTool, import_handler


class ToolRegistry:
    """The tools one agent can see."""

    def __init__(self, tools: Iterable[Tool] = (), *, allowed: Iterable[str] | None = None) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._allowed = None if allowed is None else frozenset(allowed)

    def __len__(self) -> int:
        return len(self.available())

    def is_allowed(self, name: str) -> bool:
        return name in self._tools and (self._allowed is None or name in self._allowed)

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


def build_registry(
    tool_configs: Sequence[Any],
    *,
    allowed_actions: Sequence[str] | None,
    search_path: Path | None = None,
) -> ToolRegistry:
    """Instantiate an agent's ``spec.tools``.

    Raises:
        ConfigurationError: a tool's type is not runnable in this build, or its handler
            cannot be imported. Raised when the agent is built, not in the middle of a run.
    """
    tools: list[Tool] = []
    for cfg in tool_configs:
        if cfg.type == "python":
            func = import_handler(cfg.handler, search_path=search_path)
            tools.append(
                PythonTool(
                    cfg.name,
                    func,
                    description=cfg.description or None,
                    parameters=cfg.json_schema() if cfg.parameters else None,
                )
            )
        else:
            raise ConfigurationError(
                f"tool {cfg.name!r}: type {cfg.type!r} validates but is not runnable in this "
                "build yet (runnable: python)"
            )
    return ToolRegistry(tools, allowed=allowed_actions)

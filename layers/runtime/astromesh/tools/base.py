"""The one interface every tool implements, and the argument checking written once for all.

A tool never raises into the step loop: a bad call or a failure becomes a ``ToolResult``
with ``ok=False`` and a message the model can read and correct itself from.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Protocol, runtime_checkable

from pydantic import BaseModel

from astromesh.errors import ToolError
from astromesh.models.types import ToolDefinition
from astromesh.security.regex import schema_validator_class
from astromesh.text_boundary import Repaired, RepairedStr, repair, repair_value
from astromesh.tools.arguments import quick_check

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

logger = logging.getLogger(__name__)


class ChildRunner(Protocol):
    """Runs another agent as a child of the current run and returns the finished run; the
    child's context is the parent's, with ``context`` (an agent tool's
    ``context_transform``) over it."""

    def __call__(
        self, agent_name: str, query: str, *, context: Mapping[str, Any] | None = None
    ) -> Awaitable[RunState]: ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who is calling: handed to tools that declare a ``context`` parameter."""

    run_id: str
    agent: str
    session_id: str
    namespace: str = "default"
    run_child: ChildRunner | None = None
    """How an agent tool starts a child run; set by the executor, ``None`` where unsupported."""


class ToolResult(BaseModel):
    """What a tool call produced, as text for the model plus the raw value for the caller.

    Both are repaired to valid text as the result is built (:mod:`astromesh.text_boundary`):
    a tool (an MCP server, a webhook, Python code) may return anything, and nobody can be
    told, but the run holding the result must still be stored and answered."""

    ok: bool
    content: RepairedStr
    data: Annotated[Any, Repaired] = None
    duration_ms: float = 0.0


class Tool(ABC):
    """A named capability with JSON-Schema parameters."""

    def __init__(self, name: str, description: str, parameters: dict[str, Any]) -> None:
        # Repaired to valid text: an MCP server names and describes its own tools, and the
        # tool list (GET /v1/tools, what the model is told) must always encode.
        self.name = repair(name)
        self.description = repair(description)
        self.parameters = repair_value(parameters)
        self._validator = schema_validator_class()(parameters)
        self._certainly_valid = quick_check(parameters)

    @cached_property
    def definition(self) -> ToolDefinition:
        """Built once: a tool's name, description and parameters are fixed when it is built
        and the model is frozen, and every step asks for every tool's (one validation each)."""
        return ToolDefinition(
            name=self.name, description=self.description, parameters=self.parameters
        )

    @abstractmethod
    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Do the work with already-validated arguments; return any JSON-serialisable value."""

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        """Validate, invoke, and turn every outcome into a :class:`ToolResult`."""
        started = time.perf_counter()
        problems = self.argument_errors(arguments)
        if problems:
            return ToolResult(
                ok=False,
                content=f"invalid arguments for tool '{self.name}': " + "; ".join(problems),
                duration_ms=_ms_since(started),
            )
        try:
            value = await self.invoke(arguments, context)
        except Exception as exc:  # noqa: BLE001 - any tool failure is reported to the model
            logger.warning(
                "tool=<%s> run_id=<%s> | tool failed: %r", self.name, context.run_id, exc
            )
            return ToolResult(
                ok=False,
                content=f"tool '{self.name}' failed: {type(exc).__name__}: {exc}",
                duration_ms=_ms_since(started),
            )
        value = repair_value(value)  # what the model reads and the run keeps: valid text
        return ToolResult(
            ok=True, content=render_value(value), data=value, duration_ms=_ms_since(started)
        )

    def argument_errors(self, arguments: dict[str, Any]) -> list[str]:
        """Human-readable schema violations, each prefixed with the argument's path."""
        if "_raw" in arguments and len(arguments) == 1:
            return [f"arguments are not valid JSON: {arguments['_raw']!r}"]
        if self._certainly_valid is not None and self._certainly_valid(arguments):
            return []
        from referencing.exceptions import Unresolvable  # with the validator, not at import

        try:
            errors = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
        except Unresolvable as exc:  # a $ref to nowhere: the tool's schema, not the call
            return [f"the tool's parameter schema cannot be used: unresolvable $ref {exc}"]
        return [
            f"{'.'.join(str(p) for p in err.path) or '(arguments)'}: {err.message}"
            for err in errors
        ]


class ToolsetUnavailable(ToolError):
    """A toolset could not be loaded at its first use (its MCP server did not start, could
    not be reached, or refused the connection). The run that needed it fails with this; the
    next run tries again."""

    code = "tools_unavailable"
    status = 503


@runtime_checkable
class Toolset(Protocol):
    """Tools that exist only once something outside the process is reached: an MCP server's.

    Building an agent must start no process and open no connection of the document's
    choosing (a posted document is validated by building it), so such tools are registered
    as a toolset and loaded on first use (:meth:`ToolRegistry.ensure_ready
    <astromesh.tools.registry.ToolRegistry.ensure_ready>`), after the caller's checks.
    """

    name: str
    """The tool config's name (for messages)."""

    async def load(self) -> list[Tool]:
        """Connect and return the tools; called again after a failure (a later run retries).

        Raises:
            AstromeshError: the tools cannot be had now (reported as the run's error).
        """
        ...

    async def discard(self) -> None:
        """Release what the last :meth:`load` opened, whose tools will not be used (a name
        clash); a later load may connect again."""
        ...

    async def aclose(self) -> None:
        """Release whatever :meth:`load` opened; later loads are refused."""
        ...


def render_value(value: Any) -> str:
    """Text the model sees for a tool's return value."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, ensure_ascii=False)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)

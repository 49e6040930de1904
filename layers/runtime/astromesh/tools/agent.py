"""Agent tools: another agent called as a tool, which runs it as a child run.

Calling an agent is a side effect like any other tool call, so it goes through the ``act``
stage (concurrently with the step's other calls, recorded as a ``tool_call`` step). The
executor supplies :attr:`ToolContext.run_child`; the child is a full run of its own, stored
with ``parent_run_id`` and ``depth``, and its answer is the tool's result.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from astromesh.errors import AstromeshError, ToolError
from astromesh.runs.state import RunStatus
from astromesh.tools.base import Tool, ToolContext

if TYPE_CHECKING:
    from astromesh.prompts.render import PromptTemplate

QUERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "The request for the agent"}},
    "required": ["query"],
}


class ChildRunFailed(ToolError):
    """The called agent's run ended without an answer; the message carries its error."""

    code = "child_run_failed"


class AgentDepthExceeded(ToolError):
    """A child run was refused: agents calling agents nest too deep (likely a loop)."""

    code = "agent_depth_exceeded"


class AgentTool(Tool):
    """Runs the agent ``agent_name`` with the call's ``query`` and returns its answer.

    Args:
        name: the tool's name (what a model or a plan calls).
        agent_name: the agent to run.
        description: what the model is told; defaults to a sentence naming the agent.
        parameters: JSON Schema of the arguments; ``query`` (a string) by default. With other
            parameters the child's query is the arguments as JSON.
        context_transform: upstream's template, rendered in the bounded sandbox with the
            arguments as ``data`` into a JSON object that goes over the parent's context for
            the child (its keys are variables of the child's system prompt). It renders what
            a model asked for, so a render that fails or is not a JSON object fails the call,
            never the run.
    """

    def __init__(
        self,
        name: str,
        agent_name: str,
        *,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        context_transform: str | None = None,
    ) -> None:
        self.agent_name = agent_name
        self._transform: PromptTemplate | None = None
        if context_transform is not None:
            from astromesh.prompts.render import PromptTemplate

            self._transform = PromptTemplate(
                name, context_transform, field=f"tool {name!r} context_transform"
            )
        super().__init__(
            name=name,
            description=description or f"Ask the agent '{agent_name}' to handle a request.",
            parameters=parameters or QUERY_SCHEMA,
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        if context.run_child is None:
            raise ToolError(
                f"agent tool '{self.name}' needs an executor that runs child agents; "
                "this one does not"
            )
        child = await context.run_child(
            self.agent_name, child_query(arguments), context=self._child_context(arguments)
        )
        if child.status is not RunStatus.SUCCEEDED:
            raise ChildRunFailed(
                f"agent '{self.agent_name}' {child.status.value} (run {child.id}): "
                f"{child.error or 'no answer'}"
            )
        return child.answer or ""

    def _child_context(self, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """What ``context_transform`` renders from ``arguments``, or ``None`` without one.

        Raises:
            ToolError: the render failed or went over the sandbox's limits, or its text is
                not one JSON object.
        """
        if self._transform is None:
            return None
        try:
            rendered = self._transform.render({"data": arguments})
        except AstromeshError as exc:  # a limit, an undefined name, a type error
            raise ToolError(f"context_transform failed: {exc}") from None
        try:
            value = json.loads(rendered)
        except (ValueError, RecursionError) as exc:
            raise ToolError(
                f"context_transform did not render JSON ({exc}): {rendered[:200]!r}"
            ) from None
        if not isinstance(value, dict):
            raise ToolError(
                f"context_transform must render a JSON object, got {type(value).__name__}"
            )
        return value


def child_query(arguments: dict[str, Any]) -> str:
    """The child's query: the ``query`` argument alone, or all arguments as JSON."""
    query = arguments.get("query")
    if isinstance(query, str) and len(arguments) == 1:
        return query
    return json.dumps(arguments, ensure_ascii=False)

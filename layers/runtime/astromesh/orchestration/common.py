"""Small helpers shared by the patterns: the run's system prompt, agent calls, labels."""

from __future__ import annotations

from collections.abc import Sequence

from astromesh.errors import ConfigurationError
from astromesh.models.types import Message, Role, ToolCall
from astromesh.orchestration.base import StepContext
from astromesh.runs.state import RunState


def system_messages(run: RunState) -> list[Message]:
    """The run's system message (from ``prepare``) as a list, empty when there is none."""
    if run.messages and run.messages[0].role is Role.SYSTEM:
        return [run.messages[0]]
    return []


def with_system(messages: Sequence[Message], section: str) -> list[Message]:
    """``messages`` with ``section`` appended to the system message (added if missing)."""
    out = list(messages)
    if out and out[0].role is Role.SYSTEM:
        out[0] = Message.system(f"{out[0].content}\n\n{section}".strip())
    else:
        out.insert(0, Message.system(section))
    return out


def agent_call(ctx: StepContext, agent_name: str, query: str, *, call_id: str) -> ToolCall:
    """A call of the agent tool for ``agent_name`` (added to the registry at build time).

    Raises:
        ConfigurationError: the agent has no tool for ``agent_name`` (built without the
            pattern's wiring).
    """
    tool = ctx.agent.tools.agent_tool(agent_name)
    if tool is None:
        raise ConfigurationError(
            f"agent {ctx.agent.name!r} has no agent tool for {agent_name!r}; "
            "it must be built by AgentRuntime"
        )
    return ToolCall(id=call_id, name=tool.name, arguments={"query": query})

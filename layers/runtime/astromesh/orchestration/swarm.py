"""Swarm: agents hand control to each other with a ``handoff`` tool; the conversation carries over.

YAML (``spec.orchestration``)::

    pattern: swarm
    agents: [triage, billing, tech]   # agents defined in the same folder; the first one
                                      # starts. When left out, the agents the agent's
                                      # `type: agent` tools call, in order (upstream)
    max_handoffs: 5                   # default 5; one more fails the run (handoff_limit)
    max_iterations: 10                # each round of tool calls uses one iteration
    timeout_seconds: 120

The active agent (``pattern_state["active"]``) runs ReAct-style with *its own* system prompt,
model and tools plus ``handoff({"agent": <another swarm agent>, "reason": ...})``. Every model
call is the active agent's system prompt followed by the shared conversation (this run's
history and query, every agent's replies and tool results), so after a handoff the new agent
picks up where the last one stopped. A handoff changes the active agent and the next model
call happens in the same step; a handoff to the active agent itself or to an agent outside
the swarm is answered with an error the model can correct. Every handoff call counts towards
``max_handoffs``, rejected ones included, so no loop of handoffs (valid or not) runs forever.

The members' tools run through this agent's ``act`` stage: they are registered here (at build
time) as ``<agent>/<tool>``, and the member's own permissions decide which ones exist. A
member's MCP tools exist only once its servers are connected, on first use: they come from
:meth:`SwarmPattern.member_toolsets`, which the swarm agent's registry loads like its own. The
swarm agent's own system prompt and tools are not used by the members. The agent that gave
the answer is in ``run.data["swarm"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from astromesh.errors import ConfigurationError
from astromesh.models.types import Message, ModelResponse, Role, ToolCall, ToolDefinition
from astromesh.orchestration import text_protocol
from astromesh.orchestration.base import Act, Decision, Fail, Finish, Pattern, StepContext
from astromesh.orchestration.common import with_system
from astromesh.orchestration.state import PatternState
from astromesh.runs.state import ActionResult, RunState
from astromesh.tools.base import Tool, ToolContext, ToolResult

if TYPE_CHECKING:
    from astromesh.agent import Agent

HANDOFF_TOOL = "handoff"
DEFAULT_MAX_HANDOFFS = 5
_SEPARATOR = "/"


class _State(PatternState):
    active: str | None = None
    handoffs: int = 0
    trail: list[str] = Field(default_factory=list)
    """The agents that were active, in order."""


class SwarmPattern(Pattern):
    name = "swarm"

    def __init__(self, members: Mapping[str, Agent], *, max_handoffs: int | None = None) -> None:
        self.members = dict(members)
        self.order = list(members)
        self.max_handoffs = DEFAULT_MAX_HANDOFFS if max_handoffs is None else max_handoffs
        for name, member in self.members.items():
            if HANDOFF_TOOL in member.tools:
                raise ConfigurationError(
                    f"swarm agent {name!r} has a tool named {HANDOFF_TOOL!r}, which the swarm "
                    "gives every agent; rename it"
                )

    def member_tools(self) -> list[Tool]:
        """The members' permitted tools, to register on the swarm agent as ``agent/tool``."""
        return [
            MemberTool(name, tool)
            for name, member in self.members.items()
            for tool in member.tools.available()
        ]

    def member_toolsets(self) -> list[MemberToolset]:
        """The members' tools still to be loaded (their MCP servers'), one toolset each."""
        return [
            MemberToolset(name, member)
            for name, member in self.members.items()
            if member.tools.pending
        ]

    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        state = _State.load(run)
        if state.active is None:
            state.active = self.order[0]
            state.trail = [state.active]
        try:
            while True:
                speaker = state.active or self.order[0]
                member = self.members[speaker]
                calls, answer = await self._turn(run, ctx, member)
                if not calls:
                    run.data = {
                        **(run.data or {}),
                        "swarm": {"agent": speaker, "trail": state.trail},
                    }
                    return Finish(answer)
                others = [call for call in calls if call.name != HANDOFF_TOOL]
                for call in calls:
                    if call.name != HANDOFF_TOOL:
                        continue
                    state.handoffs += 1
                    if state.handoffs > self.max_handoffs:
                        return Fail(
                            f"handoff limit reached (max_handoffs={self.max_handoffs}); "
                            f"active agents: {' -> '.join(state.trail)}",
                            code="handoff_limit",
                        )
                    self._handoff(run, state, speaker, call)
                if others:
                    return Act([qualified(speaker, call) for call in others])
        finally:
            state.save(run)

    async def _turn(
        self, run: RunState, ctx: StepContext, member: Agent
    ) -> tuple[list[ToolCall], str]:
        """One model call of the active agent: its tool calls, or its answer."""
        member_ctx = StepContext(agent=member, emit=ctx.emit)
        tools = [*member.tools.definitions(), self._handoff_tool(member.name)]
        system = member.render_system_prompt(run)
        conversation = [Message.system(system)] if system else []
        conversation += [m for m in run.messages if m.role is not Role.SYSTEM]
        if member.router.primary().supports_native_tools:
            response: ModelResponse = await self.call_model(
                run, member_ctx, conversation, tools=tools
            )
            run.messages.append(response.as_message())
            return list(response.tool_calls), response.content
        response = await self.call_model(
            run,
            member_ctx,
            with_system(conversation, text_protocol.instructions(tools)),
            token_filter=text_protocol.AnswerStreamFilter(),
        )
        run.messages.append(Message.assistant(response.content))
        parsed = text_protocol.parse(
            response.content, call_id=f"call_{run.iteration}_{len(run.messages)}"
        )
        return ([parsed.call] if parsed.call else []), parsed.answer or ""

    def _handoff(self, run: RunState, state: _State, speaker: str, call: ToolCall) -> None:
        """Apply one handoff call (or reject it) and answer it in the conversation."""
        target = call.arguments.get("agent")
        reason = call.arguments.get("reason", "")
        if target == speaker:
            error = f"you are already '{speaker}'; hand off to another agent or answer yourself"
        elif target not in self.members:
            error = f"unknown agent {target!r}; the other agents are: " + ", ".join(
                name for name in self.order if name != speaker
            )
        elif state.active != speaker:
            error = "only one handoff per turn; the first one was applied"
        else:
            error = ""
        ok = not error
        if ok:
            state.active = str(target)
            state.trail.append(state.active)
        run.record("handoff", source=speaker, target=target, reason=reason, ok=ok, error=error)
        content = f"Handed off to '{target}'." if ok else f"Handoff refused: {error}"
        _answer(run, call, content)

    def _handoff_tool(self, speaker: str) -> ToolDefinition:
        others = [name for name in self.order if name != speaker]
        described = "; ".join(
            f"{name}: {self.members[name].config.description or 'no description'}"
            for name in others
        )
        return ToolDefinition(
            name=HANDOFF_TOOL,
            description=(
                "Hand the conversation to another agent who is better placed to continue. "
                f"Agents: {described}"
            ),
            parameters={
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "enum": others},
                    "reason": {"type": "string", "description": "why that agent should take over"},
                },
                "required": ["agent"],
            },
        )

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        for result in results:
            call = ToolCall(id=result.call_id, name=unqualified(result.name))
            _answer(run, call, result.content)


def _answer(run: RunState, call: ToolCall, content: str) -> None:
    """Reply to a call the way it was made: a tool message, or a text-protocol observation."""
    native = any(
        c.id == call.id
        for m in reversed(run.messages)
        if m.role is Role.ASSISTANT
        for c in m.tool_calls
    )
    if native:
        run.messages.append(Message.tool(content, tool_call_id=call.id, name=call.name))
    else:
        run.messages.append(Message.user(f"Observation: {content}"))


def qualified(agent: str, call: ToolCall) -> ToolCall:
    """The call as the swarm agent's registry knows it: ``agent/tool``."""
    return ToolCall(id=call.id, name=f"{agent}{_SEPARATOR}{call.name}", arguments=call.arguments)


def unqualified(name: str) -> str:
    return name.split(_SEPARATOR, 1)[-1]


class MemberTool(Tool):
    """A swarm member's tool, registered on the swarm agent as ``<member>/<tool>``."""

    def __init__(self, member: str, tool: Tool) -> None:
        self.tool = tool
        super().__init__(
            name=f"{member}{_SEPARATOR}{tool.name}",
            description=tool.description,
            parameters=tool.parameters,
        )

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return await self.tool.call(arguments, context)

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        return await self.tool.invoke(arguments, context)


class MemberToolset:
    """A member's tools that exist only once loaded (its MCP servers'), as ``<member>/<tool>``.

    Loading the swarm agent's tools loads the member's (one shared attempt: the member is
    the runtime's own built agent), then wraps the tools that were not there at build time.
    """

    def __init__(self, member_name: str, member: Agent) -> None:
        self.name = f"{member_name}{_SEPARATOR}*"
        self.member_name = member_name
        self.member = member
        self._known = {tool.name for tool in member.tools.available()}

    async def load(self) -> list[Tool]:
        """Raises: ConfigurationError: a loaded tool is called ``handoff``; or what the
        member's own :meth:`~astromesh.tools.registry.ToolRegistry.ensure_ready` raises."""
        await self.member.tools.ensure_ready()
        if HANDOFF_TOOL in self.member.tools:
            raise ConfigurationError(
                f"swarm agent {self.member_name!r} has a tool named {HANDOFF_TOOL!r}, which the"
                " swarm gives every agent; rename it (or leave it out of allowed_tools)"
            )
        return [
            MemberTool(self.member_name, tool)
            for tool in self.member.tools.available()
            if tool.name not in self._known
        ]

    async def discard(self) -> None:
        """Nothing to release: the member agent owns its connections."""

    async def aclose(self) -> None:
        """Nothing to release: the member agent owns its connections."""

"""ReAct: the model reasons and calls tools until it answers.

YAML (``spec.orchestration``): ``pattern: react``, ``max_iterations``, ``timeout_seconds``,
``tool_calling: auto | native | text`` (auto = native when the primary model supports it).
"""

from __future__ import annotations

from collections.abc import Sequence

from astromesh.models.types import Message
from astromesh.orchestration import text_protocol
from astromesh.orchestration.base import Act, Decision, Finish, Pattern, StepContext
from astromesh.runs.state import ActionResult, RunState
from astromesh.structured.settle import native_params


class ReActPattern(Pattern):
    name = "react"

    def __init__(self, *, tool_calling: str = "auto") -> None:
        self.tool_calling = tool_calling

    def uses_text_protocol(self, ctx: StepContext) -> bool:
        if not len(ctx.agent.tools):
            return False
        if self.tool_calling == "auto":
            return not ctx.agent.router.primary().supports_native_tools
        return self.tool_calling == "text"

    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        if self.uses_text_protocol(ctx):
            return await self._text_step(run, ctx)
        # An output schema is asked for natively where every candidate can do it (the answer
        # is then JSON; tool calls are unaffected); pipeline.step checks it either way.
        response = await self.call_model(
            run,
            ctx,
            run.messages,
            tools=ctx.agent.tools.definitions(),
            params=native_params(ctx.agent),
        )
        run.messages.append(response.as_message())
        if response.tool_calls:
            return Act(list(response.tool_calls))
        return Finish(response.content)

    async def _text_step(self, run: RunState, ctx: StepContext) -> Decision:
        section = text_protocol.instructions(ctx.agent.tools.definitions())
        messages = _with_protocol(run.messages, section)
        response = await self.call_model(
            run, ctx, messages, token_filter=text_protocol.AnswerStreamFilter()
        )
        run.messages.append(Message.assistant(response.content))
        parsed = text_protocol.parse(response.content, call_id=f"call_{run.iteration}_0")
        if parsed.call is not None:
            return Act([parsed.call])
        return Finish(parsed.answer or "")

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        last = run.messages[-1] if run.messages else None
        if last is not None and last.tool_calls:
            super().observe(run, results)
            return
        for result in results:
            run.messages.append(Message.user(f"Observation: {result.content}"))


def _with_protocol(messages: Sequence[Message], section: str) -> list[Message]:
    """Append the protocol to the system message (or add one) without touching the run's copy."""
    out = list(messages)
    if out and out[0].role == "system":
        out[0] = Message.system(f"{out[0].content}\n\n{section}".strip())
    else:
        out.insert(0, Message.system(section))
    return out

"""The check of a final answer against ``spec.output_schema``, inside the ``step`` stage.

Called by :func:`astromesh.pipeline.step` on the pattern's decision, so both executors (the
local loop and the Step Functions ``step`` task) check the same way and record the same
steps. An answer that validates passes unchanged. One that does not gets exactly one repair
call: the conversation so far, the answer, what failed, and a request for the corrected JSON
alone (with the native response format when every candidate supports it). If the repaired
answer still fails, the run fails with code ``output_invalid`` naming what failed: bounded,
whatever the model does.

Each check is recorded as an ``output_check`` step (``ok``, ``problem``, ``repair``), and the
repair request and reply join ``run.messages`` like any other turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from astromesh.guardrails.chain import BLOCKED_PLACEHOLDER
from astromesh.models.types import GenerationParams, Message
from astromesh.orchestration.base import Decision, Fail, Finish, StepContext
from astromesh.structured.answer import OUTPUT_INVALID, response_format, shape

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.runs.state import RunState

OUTPUT_CHECK = "output_check"
"""The step type of one check of a final answer."""


def output_schema(agent: Agent) -> dict[str, Any] | None:
    """The agent's (normalised, load-checked) output schema, if it declares one."""
    return agent.config.spec.output_schema


def native_params(agent: Agent) -> GenerationParams | None:
    """Generation parameters asking for the schema natively, when every candidate of the
    agent's default role can be constrained to JSON (``json_mode``); otherwise ``None`` and
    the instructions and the check do the work (a native request would make the router skip
    a candidate without JSON mode, losing a fallback)."""
    schema = output_schema(agent)
    if schema is None:
        return None
    if not all(model.capabilities.json_mode for model in agent.router.candidates()):
        return None
    return GenerationParams(response_format=response_format(schema))


async def settle_answer(run: RunState, ctx: StepContext, decision: Decision) -> Decision:
    """``decision`` when it is not a final answer or the answer validates; else the repaired
    answer, or a ``fail`` with code ``output_invalid``."""
    schema = output_schema(ctx.agent)
    if schema is None or not isinstance(decision, Finish):
        return decision
    _, problem = shape(decision.answer, schema)
    if problem is None:
        run.record(OUTPUT_CHECK, ok=True, repair=False)
        return decision
    run.record(OUTPUT_CHECK, ok=False, repair=False, problem=problem)
    if _repaired_before(run):  # one repair per run, whatever the pattern does next
        return _invalid(problem)
    run.messages.append(Message.user(repair_request(problem)))
    response = await ctx.agent.pattern.call_model(
        run, ctx, run.messages, params=native_params(ctx.agent)
    )
    run.messages.append(Message.assistant(response.content))
    await _screen_rejected(run, ctx.agent, decision.answer)
    _, problem = shape(response.content, schema)
    run.record(OUTPUT_CHECK, ok=problem is None, repair=True, problem=problem)
    if problem is not None:
        return _invalid(problem)
    return Finish(response.content)


async def _screen_rejected(run: RunState, agent: Agent, rejected: str) -> None:
    """Give the rejected answer's copies in the run (its assistant message, its model call's
    ``content``) the output guardrails' treatment once the model has seen it for the repair.

    Only the final answer goes through ``screen_answer``/``finalize``; without this the
    answer the repair replaced would be stored as the model wrote it (on Step Functions the
    step task saves the run right after). The verdicts are not recorded as steps: they are
    recorded when the answer that stands is screened.
    """
    if not agent.guardrails.output or not rejected:
        return
    result = await agent.guardrails.check_output(rejected, run)
    screened = BLOCKED_PLACEHOLDER if result.blocked is not None else result.text
    if screened == rejected:
        return
    for message in run.messages:
        if message.role == "assistant" and rejected in message.content:
            message.content = message.content.replace(rejected, screened)
    for step in run.steps:
        content = step.data.get("content") if step.type == "model_call" else None
        if isinstance(content, str) and rejected in content:
            step.data["content"] = content.replace(rejected, screened)


def repair_request(problem: str) -> str:
    """What the model is told after an answer that does not validate."""
    return (
        "Your answer does not match the required JSON Schema: "
        f"{problem}. Reply again with only the corrected JSON object, no prose."
    )


def _repaired_before(run: RunState) -> bool:
    return any(s.type == OUTPUT_CHECK and s.data.get("repair") for s in run.steps)


def _invalid(problem: str) -> Fail:
    return Fail(
        f"the answer does not match spec.output_schema after one repair: {problem}",
        code=OUTPUT_INVALID,
    )

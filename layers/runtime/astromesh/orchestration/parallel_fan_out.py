"""Parallel fan-out: the same query to several agents and models at once, then one answer.

YAML (``spec.orchestration``)::

    pattern: parallel_fan_out
    targets:                     # each exactly one of:
      - agent: researcher        #   another agent (a child run), or
      - model: critic            #   a model role of this agent's spec.model
      - model: default           #   ("default" or a role under spec.model.roles)
    aggregate: vote              # merge (default) | vote | synthesize
    max_iterations: 10
    timeout_seconds: 120

A ``model`` target names a *role* of this agent (``spec.model.roles``), so it gets that role's
candidates with their fallbacks and prices; an undeclared role is refused at build time
rather than silently using the default model. Model targets are called concurrently within
the step; agent targets are one ``Act`` with one agent-tool call each (run concurrently by
the ``act`` stage). Each target sees this agent's conversation (system prompt, history, query).

Aggregates:

- ``merge``: every answer, labelled with its target, in target order.
- ``vote``: the most common answer after normalisation (case, spacing, surrounding
  punctuation); a tie goes to the answer of the earliest target. The tally is in
  ``run.data["vote"]``.
- ``synthesize``: a model call (role ``synthesizer``, else the default candidates) that
  writes one answer from all of them.

A failing target is tolerated while at least one answered; failures are listed in
``run.data["fan_out"]["failures"]``. If every target fails the run fails
(code ``all_targets_failed``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field

from astromesh.config.orchestration import FanOutTarget
from astromesh.errors import AstromeshError
from astromesh.models.types import Message
from astromesh.orchestration.base import Act, Decision, Fail, Finish, Pattern, StepContext
from astromesh.orchestration.common import agent_call, system_messages, with_system
from astromesh.orchestration.state import PatternState
from astromesh.runs.state import ActionResult, RunState

SYNTHESIS_INSTRUCTION = (
    "Several assistants answered the user's request independently. Write the single best "
    "answer from theirs: keep what they agree on, resolve disagreements, add nothing unsupported."
)


class _Outcome(BaseModel):
    ok: bool
    content: str


class _State(PatternState):
    started: bool = False
    outcomes: dict[str, _Outcome] = Field(default_factory=dict)
    """Per target index (as a string: JSON object keys), once it has answered or failed."""


class ParallelFanOutPattern(Pattern):
    name = "parallel_fan_out"

    def __init__(self, targets: Sequence[FanOutTarget], aggregate: str = "merge") -> None:
        self.targets = list(targets)
        self.aggregate = aggregate
        self.labels = target_labels(self.targets)

    async def step(self, run: RunState, ctx: StepContext) -> Decision:
        state = _State.load(run)
        if not state.started:
            state.started = True
            await self._ask_models(run, ctx, state)
            calls = [
                agent_call(ctx, target.agent, run.query, call_id=f"target_{index}")
                for index, target in enumerate(self.targets)
                if target.agent is not None
            ]
            state.save(run)
            if calls:
                run.messages.append(Message.assistant("", tool_calls=calls))
                return Act(calls)
        return await self._aggregate(run, ctx, state)

    async def _ask_models(self, run: RunState, ctx: StepContext, state: _State) -> None:
        indexes = [i for i, target in enumerate(self.targets) if target.model is not None]
        replies = await asyncio.gather(
            *(
                self.call_model(
                    run,
                    ctx,
                    run.messages,
                    role=self.targets[i].model or "default",
                    stream_tokens=False,
                )
                for i in indexes
            ),
            return_exceptions=True,
        )
        for index, reply in zip(indexes, replies, strict=True):
            if isinstance(reply, AstromeshError):  # a provider failure is this target's failure
                state.outcomes[str(index)] = _Outcome(ok=False, content=reply.message)
            elif isinstance(reply, BaseException):
                raise reply
            else:
                state.outcomes[str(index)] = _Outcome(ok=True, content=reply.content)

    def observe(self, run: RunState, results: Sequence[ActionResult]) -> None:
        super().observe(run, results)
        state = _State.load(run)
        for result in results:
            index = result.call_id.removeprefix("target_")
            state.outcomes[index] = _Outcome(ok=result.ok, content=result.content)
        state.save(run)

    async def _aggregate(self, run: RunState, ctx: StepContext, state: _State) -> Decision:
        answers: list[tuple[str, str]] = []
        failures: list[dict[str, str]] = []
        for index, label in enumerate(self.labels):
            outcome = state.outcomes.get(str(index))
            if outcome is None:
                failures.append({"target": label, "error": "no result"})
            elif outcome.ok:
                answers.append((label, outcome.content.strip()))
            else:
                failures.append({"target": label, "error": outcome.content})
        run.data = {
            **(run.data or {}),
            "fan_out": {
                "aggregate": self.aggregate,
                "answered": [label for label, _ in answers],
                "failures": failures,
            },
        }
        if not answers:
            detail = "; ".join(f"{f['target']}: {f['error']}" for f in failures)
            return Fail(f"every fan-out target failed: {detail}", code="all_targets_failed")
        if self.aggregate == "vote":
            answer, tally = vote(answers)
            run.data["vote"] = tally
        elif self.aggregate == "synthesize":
            answer = await self._synthesize(run, ctx, answers)
        else:
            answer = merge(answers)
        run.record("aggregate", method=self.aggregate, answers=len(answers), failures=failures)
        run.messages.append(Message.assistant(answer))
        return Finish(answer)

    async def _synthesize(
        self, run: RunState, ctx: StepContext, answers: Sequence[tuple[str, str]]
    ) -> str:
        messages = with_system(system_messages(run), SYNTHESIS_INSTRUCTION)
        messages.append(Message.user(f"Request: {run.query}\n\nAnswers:\n\n{merge(answers)}"))
        response = await self.call_model(run, ctx, messages, role="synthesizer")
        return response.content


def target_labels(targets: Sequence[FanOutTarget]) -> list[str]:
    """``agent`` or ``model:role`` per target; repeated ones get ``#2``, ``#3``..."""
    labels: list[str] = []
    seen: Counter[str] = Counter()
    for target in targets:
        base = target.agent if target.agent is not None else f"model:{target.model}"
        seen[base] += 1
        labels.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return labels


def merge(answers: Sequence[tuple[str, str]]) -> str:
    """Every answer under its target's label, in target order."""
    return "\n\n".join(f"[{label}]\n{answer}" for label, answer in answers)


def normalise(answer: str) -> str:
    """The form answers are compared in: case-folded, spaces collapsed, edge punctuation off."""
    return " ".join(answer.casefold().split()).strip(" .!?;:,\"'`")


def vote(answers: Sequence[tuple[str, str]]) -> tuple[str, dict[str, object]]:
    """The most common answer (ties: the earliest target's) and the tally behind it."""
    normalised = [(label, normalise(answer), answer) for label, answer in answers]
    tally = Counter(norm for _, norm, _ in normalised)
    best = max(tally.values())
    winner_label, winner, answer = next(item for item in normalised if tally[item[1]] == best)
    report: dict[str, object] = {
        "tally": dict(tally),
        "winner": winner,
        "winner_target": winner_label,
        "votes": {label: norm for label, norm, _ in normalised},
    }
    return answer, report

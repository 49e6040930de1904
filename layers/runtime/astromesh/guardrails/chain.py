"""An agent's guardrails, input and output side, applied in YAML order; and the two pipeline
helpers that wire them into a run.

:class:`GuardrailChain` runs one side's guardrails in order: a redaction hands the redacted
text to the next guardrail, a block stops the chain. :meth:`GuardrailChain.check_budget`
is the between-steps cost check of one run's usage; :meth:`GuardrailChain.reserve_shared`
and :meth:`GuardrailChain.settle_shared` charge the shared budgets (per session, per agent
per day) in the chain's :class:`~astromesh.guardrails.ledger.BudgetLedger`.

:func:`guard_input` and :func:`guard_output` are what ``pipeline.prepare`` and
``pipeline.finalize`` call. They record each verdict as a ``guardrail`` step
(``name``, ``side``, ``action``, ``reason``, ``findings``), put the redacted text in place
of the original *in the run* (the query; the answer and the copies of it in the last
assistant message and model-call step), and on a block replace the text with
:data:`BLOCKED_PLACEHOLDER`, so a blocked text is never stored. :func:`reserve_budget` and
:func:`settle_budget` are what ``pipeline.step`` calls around each step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from astromesh.guardrails.base import Action, Guardrail, GuardrailBlocked, Side, Verdict
from astromesh.guardrails.cost import LIMIT_MESSAGE, CostGuardrail, estimate_step, run_spend
from astromesh.guardrails.ledger import Budget, BudgetLedger, MemoryBudgetLedger, Reservation, Spend

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

logger = logging.getLogger(__name__)

BLOCKED_PLACEHOLDER = "[blocked by guardrail]"


@dataclass
class ChainResult:
    """The outcome of one side: the text to use from here on and every verdict given."""

    text: str
    verdicts: list[Verdict] = field(default_factory=list)
    blocked: Verdict | None = None

    @property
    def changed(self) -> bool:
        return any(v.action is Action.REDACT for v in self.verdicts)


class GuardrailChain:
    """The input-side and output-side guardrails of one agent."""

    def __init__(
        self,
        input: Sequence[Guardrail] = (),
        output: Sequence[Guardrail] = (),
        *,
        ledger: BudgetLedger | None = None,
    ) -> None:
        """``ledger`` counts the shared budgets; the runtime passes its one ledger (Redis
        when configured) so every agent and instance shares it. Without one, a chain with
        shared budgets counts them in a ledger of its own (this process only)."""
        self.input = list(input)
        self.output = list(output)
        self._costs = [g for g in (*self.input, *self.output) if isinstance(g, CostGuardrail)]
        self.ledger: BudgetLedger | None = ledger
        if self.ledger is None and any(g.has_shared_budget for g in self._costs):
            self.ledger = MemoryBudgetLedger()

    def __bool__(self) -> bool:
        return bool(self.input or self.output)

    @property
    def screens_output_text(self) -> bool:
        """Whether an output guardrail may change or block the answer's text: then tokens
        must not be streamed as generated (they could not be taken back)."""
        return any(not isinstance(g, CostGuardrail) for g in self.output)

    async def check_input(self, text: str, run: RunState | None = None) -> ChainResult:
        return await self._apply(self.input, text, run, Side.INPUT)

    async def check_output(self, text: str, run: RunState | None = None) -> ChainResult:
        return await self._apply(self.output, text, run, Side.OUTPUT)

    def check_budget(self, run: RunState) -> Verdict | None:
        """The first cost limit the run has reached (either side's ``cost_limit``), or None."""
        for guardrail in (*self.input, *self.output):
            if isinstance(guardrail, CostGuardrail):
                verdict = guardrail.usage_verdict(run, before_step=True)
                if verdict.action is Action.BLOCK:
                    return verdict
        return None

    def shared_budgets(self, run: RunState) -> list[Budget]:
        """Every cost guardrail's budgets for ``run``; two rules on the same key keep the
        tighter limit of each measure (the key must be charged once per step)."""
        merged: dict[str, Budget] = {}
        for guardrail in self._costs:
            for budget in guardrail.budgets(run):
                held = merged.get(budget.key)
                merged[budget.key] = budget if held is None else _tighter(held, budget)
        return list(merged.values())

    async def reserve_shared(self, run: RunState) -> Reservation | None:
        """Reserve the next step's estimate against the shared budgets (``None``: the chain
        has none). A refused reservation names the budget reached."""
        budgets = self.shared_budgets(run)
        if not budgets or self.ledger is None:
            return None
        return await self.ledger.reserve(budgets, estimate_step(run))

    async def settle_shared(self, reservation: Reservation, actual: Spend) -> None:
        if self.ledger is not None:
            await self.ledger.settle(reservation, actual)

    @staticmethod
    async def _apply(
        guardrails: Sequence[Guardrail], text: str, run: RunState | None, side: Side
    ) -> ChainResult:
        result = ChainResult(text)
        for guardrail in guardrails:
            verdict = await guardrail.check(result.text, run, side)
            result.verdicts.append(verdict)
            if verdict.action is Action.BLOCK:
                result.blocked = verdict
                return result
            if verdict.action is Action.REDACT and verdict.text is not None:
                result.text = verdict.text
        return result


BUDGET_SIDE = "between_steps"
"""The ``side`` of a ``guardrail`` step recorded by :func:`guard_budget`."""


def record(run: RunState, side: Side, verdicts: Sequence[Verdict]) -> None:
    """Append one ``guardrail`` step per verdict."""
    for verdict in verdicts:
        run.record("guardrail", **verdict.as_step(side))


def guard_budget(run: RunState, chain: GuardrailChain) -> Verdict | None:
    """Before a step: the cost limit the run has reached, recorded as a ``guardrail`` step
    (side ``between_steps``), or ``None`` to go on. The caller ends the run with
    ``verdict.user_message(Side.OUTPUT)`` and code ``cost_limit``."""
    verdict = chain.check_budget(run)
    if verdict is not None:
        run.record("guardrail", **{**verdict.as_step(Side.OUTPUT), "side": BUDGET_SIDE})
    return verdict


async def reserve_budget(
    run: RunState, chain: GuardrailChain
) -> tuple[Reservation | None, Verdict | None]:
    """Before a step: reserve it against the shared budgets.

    Returns ``(reservation, None)`` to go on (settle the reservation with
    :func:`settle_budget` after the step, whatever happens), or ``(None, verdict)`` when a
    shared budget is reached: the verdict is recorded as a ``guardrail`` step (side
    ``between_steps``) and the caller ends the run with code ``cost_limit``.

    A ledger that cannot be reached (Redis down) fails open with a warning, like the circuit
    breaker: the per-run limits still apply, and an outage of the budget store does not stop
    every agent.
    """
    try:
        reservation = await chain.reserve_shared(run)
    except Exception as exc:  # noqa: BLE001 - any ledger failure: fail open, logged
        logger.warning("run_id=<%s> | budget ledger unavailable, not enforced: %s", run.id, exc)
        return None, None
    if reservation is None or reservation.refusal is None:
        return reservation, None
    verdict = Verdict.block(
        _cost_guardrail_name(chain), reservation.refusal.reason(), message=LIMIT_MESSAGE
    )
    run.record("guardrail", **{**verdict.as_step(Side.OUTPUT), "side": BUDGET_SIDE})
    return None, verdict


async def settle_budget(
    run: RunState, chain: GuardrailChain, reservation: Reservation | None, before: Spend
) -> None:
    """After a step: charge what it really spent (``run``'s usage now minus ``before``)."""
    if reservation is None:
        return
    try:
        await chain.settle_shared(reservation, run_spend(run) - before)
    except Exception as exc:  # noqa: BLE001 - as in reserve_budget: logged, fail open
        logger.warning(
            "run_id=<%s> | budget ledger unavailable, usage not settled: %s", run.id, exc
        )


def _cost_guardrail_name(chain: GuardrailChain) -> str:
    return next(
        (g.name for g in (*chain.input, *chain.output) if isinstance(g, CostGuardrail)),
        CostGuardrail.type,
    )


def _tighter(a: Budget, b: Budget) -> Budget:
    def low(x: float | None, y: float | None) -> float | None:
        return y if x is None else x if y is None else min(x, y)

    tokens = low(a.max_tokens, b.max_tokens)
    return replace(
        a,
        max_tokens=None if tokens is None else int(tokens),
        max_cost=low(a.max_cost, b.max_cost),
    )


def _already_guarded(run: RunState, side: Side) -> bool:
    return any(s.type == "guardrail" and s.data.get("side") == side.value for s in run.steps)


async def guard_input(run: RunState, chain: GuardrailChain) -> ChainResult | None:
    """Apply the input side to ``run.query`` before anything is stored or sent to a model.

    Idempotent: a run whose input was already judged (it has input ``guardrail`` steps,
    e.g. checked before it was first stored) is left alone and ``None`` returned.

    Raises:
        GuardrailBlocked: after replacing ``run.query`` with :data:`BLOCKED_PLACEHOLDER`;
            its message is safe to show the user.
    """
    if not chain.input or _already_guarded(run, Side.INPUT):
        return None
    result = await chain.check_input(run.query, run)
    record(run, Side.INPUT, result.verdicts)
    if result.blocked is not None:
        run.query = BLOCKED_PLACEHOLDER
        raise GuardrailBlocked(result.blocked, Side.INPUT)
    run.query = result.text
    return result


async def guard_output(run: RunState, chain: GuardrailChain, answer: str) -> ChainResult:
    """Apply the output side to the final ``answer``; return what may be delivered.

    The run's other copies of the answer (the last assistant message and the last
    ``model_call`` step's ``content``) get the same replacement, so the unredacted answer
    is not persisted with the run. On a block ``result.blocked`` is set and ``result.text``
    is :data:`BLOCKED_PLACEHOLDER`; the caller fails the run with the verdict's message.
    """
    if not chain.output:
        return ChainResult(answer)
    result = await chain.check_output(answer, run)
    record(run, Side.OUTPUT, result.verdicts)
    if result.blocked is not None:
        result.text = BLOCKED_PLACEHOLDER
    if result.text != answer:
        _replace_answer(run, answer, result.text)
    return result


def _replace_answer(run: RunState, original: str, replacement: str) -> None:
    if not original:
        return
    for message in reversed(run.messages):
        if message.role == "assistant":
            message.content = message.content.replace(original, replacement)
            break
    for step in reversed(run.steps):
        if step.type == "model_call":
            content = step.data.get("content")
            if isinstance(content, str):
                step.data["content"] = content.replace(original, replacement)
            break

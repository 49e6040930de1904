"""An agent's guardrails, input, output and tool-result side, applied in YAML order; and the
pipeline helpers that wire them into a run.

:class:`GuardrailChain` runs one side's guardrails in order: a redaction hands the redacted
text to the next guardrail, a block stops the chain. :meth:`GuardrailChain.check_budget`
is the between-steps cost check of one run's usage; :meth:`GuardrailChain.reserve_shared`
and :meth:`GuardrailChain.settle_shared` charge the shared budgets (per session, per agent
per day) in the chain's :class:`~astromesh.guardrails.ledger.BudgetLedger`.

:func:`guard_input` is what ``pipeline.screen`` calls on a run before its first write (and
``pipeline.prepare`` on one created elsewhere); :func:`guard_output` is what
``pipeline.screen_answer`` calls on the final answer before the run is saved with it. They
record each verdict as a ``guardrail`` step
(``name``, ``side``, ``action``, ``reason``, ``findings``), put the redacted text in place
of the original *in the run* (the query; the answer and the copies of it in the last
assistant message and model-call step), and on a block replace the text with
:data:`BLOCKED_PLACEHOLDER`, so a blocked text is never stored. :func:`reserve_budget` and
:func:`settle_budget` are what ``pipeline.step`` calls around each step.

:func:`guard_tool_result` is what ``pipeline.act`` calls on each tool result, right after the
tool returns and before anything else sees the result (the ``tool_result`` event, the store of
large results, the run's steps and messages). Its semantics, per verdict:

- ``redact``: the redacted text replaces the result everywhere, so the model, the stream, the
  stored step and the kept full result (``content_ref``) all hold the redacted text only;
- ``block``: the result is replaced by :data:`WITHHELD_MESSAGE` (naming the tool and the
  guardrail, never the text) with ``ok=False``; the run goes on, and the model may try
  something else;
- a guardrail that raises withholds the result too (fail closed): a result that could not be
  screened is not handed to the model.

Per kind, on this side: ``pii_detection`` redacts to typed placeholders (``[EMAIL]``) or, with
``action: block``, withholds; ``content_filter``, ``topic_filter`` and ``prompt_injection``
withhold by default, or with ``action: redact`` replace only what matched (a topic found by
embedding similarity always withholds); ``max_length`` withholds a result longer than
``max_chars`` rather than cutting it (a silently truncated result would mislead the model);
``cost_limit`` is refused (a budget is the run's, enforced between steps wherever declared).

Every result is screened whole, including one later kept by reference (``content_ref``): the
screening happens before the full text is stored, so the stored text and its preview are the
screened ones. Screening time grows with the result (about 0.5 s per MB for PII detection
here); on Step Functions it counts against the tool executor's time limit, and a call that
runs out of time there returns the usual "did not finish" result, never the unscreened text.
A child agent's answer (agent tools) is screened by the parent's side; the child's own run
is screened by its own agent.

The verdicts that redacted or withheld the result travel with it (``ActionResult.guardrails``)
and :func:`record_tool_result` records them as ``guardrail`` steps (``side: tool_result``,
with ``call_id`` and ``tool``) after the call's ``tool_call`` step. ``allow`` verdicts are not
recorded on this side: a run makes many tool calls and its document is loaded by every
Lambda task, so only what changed a result is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.guardrails.base import Action, Guardrail, GuardrailBlocked, Side, Verdict
from astromesh.guardrails.cost import LIMIT_MESSAGE, CostGuardrail, estimate_step, run_spend
from astromesh.guardrails.ledger import Budget, BudgetLedger, MemoryBudgetLedger, Reservation, Spend

if TYPE_CHECKING:
    from astromesh.runs.state import ActionResult, RunState

logger = logging.getLogger(__name__)

BLOCKED_PLACEHOLDER = "[blocked by guardrail]"

WITHHELD_MESSAGE = (
    "The result of tool '{tool}' was withheld by the agent's guardrail '{guardrail}'; its "
    "content is not available. Continue without it or try another way."
)
"""What the model receives in place of a tool result a ``tool_results`` guardrail blocked.

Neutral on purpose: it names the tool and the guardrail (configuration), never the text or
what was found in it, so nothing of the withheld result reaches the model, the stream or the
stored run."""


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
    """The input-side, output-side and tool-result guardrails of one agent."""

    def __init__(
        self,
        input: Sequence[Guardrail] = (),
        output: Sequence[Guardrail] = (),
        *,
        tool_results: Sequence[Guardrail] = (),
        ledger: BudgetLedger | None = None,
    ) -> None:
        """``ledger`` counts the shared budgets; the runtime passes its one ledger (Redis
        when configured) so every agent and instance shares it. Without one, a chain with
        shared budgets counts them in a ledger of its own (this process only).

        Raises:
            ConfigurationError: a ``cost_limit`` among ``tool_results``: usage is the run's,
                not a text's, and is checked between steps whatever side declares it.
        """
        self.input = list(input)
        self.output = list(output)
        self.tool_results = list(tool_results)
        if any(isinstance(g, CostGuardrail) for g in self.tool_results):
            raise ConfigurationError(
                "cost_limit cannot screen tool results; declare it under input or output"
            )
        self._costs = [g for g in (*self.input, *self.output) if isinstance(g, CostGuardrail)]
        self.ledger: BudgetLedger | None = ledger
        if self.ledger is None and any(g.has_shared_budget for g in self._costs):
            self.ledger = MemoryBudgetLedger()

    def __bool__(self) -> bool:
        return bool(self.input or self.output or self.tool_results)

    @property
    def screens_output_text(self) -> bool:
        """Whether an output guardrail may change or block the answer's text: then tokens
        must not be streamed as generated (they could not be taken back)."""
        return any(not isinstance(g, CostGuardrail) for g in self.output)

    async def check_input(self, text: str, run: RunState | None = None) -> ChainResult:
        return await self._apply(self.input, text, run, Side.INPUT)

    async def check_output(self, text: str, run: RunState | None = None) -> ChainResult:
        return await self._apply(self.output, text, run, Side.OUTPUT)

    async def check_tool_result(self, text: str, run: RunState | None = None) -> ChainResult:
        """Apply the ``tool_results`` side, failing closed: a guardrail that raises gives a
        ``block`` verdict (``guardrail failed: <error type>``) instead of letting the text
        through unscreened."""
        result = ChainResult(text)
        for guardrail in self.tool_results:
            try:
                verdict = await guardrail.check(result.text, run, Side.TOOL_RESULT)
            except Exception as exc:  # noqa: BLE001 - any failure withholds the result
                logger.warning(
                    "run_id=<%s>, guardrail=<%s> | tool result screening failed, withheld: %s",
                    run.id if run is not None else None,
                    guardrail.name,
                    type(exc).__name__,
                )
                verdict = Verdict.block(guardrail.name, f"guardrail failed: {type(exc).__name__}")
            result.verdicts.append(verdict)
            if verdict.action is Action.BLOCK:
                result.blocked = verdict
                return result
            if verdict.action is Action.REDACT and verdict.text is not None:
                result.text = verdict.text
        return result

    def check_budget(self, run: RunState) -> Verdict | None:
        """The first cost limit the run has reached (either side's ``cost_limit``), or None."""
        for guardrail in self._costs:  # input's then output's, as declared; none: no work
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
        if not self._costs:  # the usual agent: nothing to reserve, nothing to build
            return None
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


INPUT_UNCHECKED_MESSAGE = (
    "Your message could not be checked by this agent's rules just now; please try again."
)
"""What the user is told when an input guardrail failed (raised) instead of judging: the
input is refused (fail closed), since what could not be screened must not be stored."""

CONTEXT_FIELD = "context"
"""The ``field`` of a ``guardrail`` step that judged a string of the run's ``context``."""


async def guard_input(run: RunState, chain: GuardrailChain) -> ChainResult | None:
    """Apply the input side to ``run.query`` and to every string of ``run.context`` before
    anything of them is stored or sent to a model.

    Called on a run that is not stored yet (``AgentRuntime.create_run``, ``run_child``,
    ``StepFunctionsExecutor.submit``), so the run's first write already holds the screened
    text; ``pipeline.prepare`` calls it again for a run created elsewhere.

    The query's verdicts are all recorded as ``guardrail`` steps. ``context`` is input the
    caller supplies like the query (templates render it into the system prompt, and it is
    stored with the run and handed to child runs), so every input guardrail judges each of
    its strings (keys and values) and numbers (as their digits) at any depth; only the
    verdicts that redacted or blocked one are recorded (with ``field: context``), never an
    allow per string. A guardrail that
    raises blocks (fails closed): what could not be screened is not stored either.

    Idempotent: a run whose input was already judged (it has input ``guardrail`` steps) is
    left alone and ``None`` returned.

    Raises:
        GuardrailBlocked: after replacing a blocked query with :data:`BLOCKED_PLACEHOLDER`
            and dropping the context (``None``: a blocked run renders no prompt, and an
            unscreened context is not kept), or dropping a context that held a blocked
            string; its message is safe to show the user.
    """
    if not chain.input or _already_guarded(run, Side.INPUT):
        return None
    result = await _check_input_closed(chain, run.query, run)
    record(run, Side.INPUT, result.verdicts)
    if result.blocked is not None:
        run.query = BLOCKED_PLACEHOLDER
        run.context = None  # not screened, and a blocked run renders no prompt with it
        raise GuardrailBlocked(result.blocked, Side.INPUT)
    run.query = result.text
    if run.context:
        try:
            run.context = await _screen_context(run, chain, run.context)
        except _ContextBlocked as blocked:
            # What follows the blocked string was never screened: none of it is kept.
            run.context = None
            raise GuardrailBlocked(blocked.verdict, Side.INPUT) from None
    return result


async def _check_input_closed(chain: GuardrailChain, text: str, run: RunState) -> ChainResult:
    """The input side, failing closed: a guardrail that raises gives a ``block`` verdict."""
    try:
        return await chain.check_input(text, run)
    except Exception as exc:  # noqa: BLE001 - any failure refuses the input, logged
        logger.warning(
            "run_id=<%s> | input screening failed, refused: %s", run.id, type(exc).__name__
        )
        verdict = Verdict.block(
            _failing_guardrail(chain),
            f"guardrail failed: {type(exc).__name__}",
            message=INPUT_UNCHECKED_MESSAGE,
        )
        return ChainResult(BLOCKED_PLACEHOLDER, [verdict], verdict)


def _failing_guardrail(chain: GuardrailChain) -> str:
    return chain.input[0].name if chain.input else "input"


class _ContextBlocked(Exception):
    """A string of the context was blocked (carries the verdict up to :func:`guard_input`)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


async def _screen_context(run: RunState, chain: GuardrailChain, value: Any) -> Any:
    """``value`` with every string (dict keys included) and number screened by the input side.

    Two keys that redact to the same text (two e-mail addresses) are both kept, the second
    as ``"[EMAIL] (2)"``.

    Raises:
        _ContextBlocked: a string was blocked.
    """
    if isinstance(value, str):
        if not value:
            return value
        result = await _check_input_closed(chain, value, run)
        for verdict in result.verdicts:
            if verdict.action is not Action.ALLOW:
                run.record("guardrail", **verdict.as_step(Side.INPUT), field=CONTEXT_FIELD)
        if result.blocked is not None:
            raise _ContextBlocked(result.blocked)
        return result.text
    if isinstance(value, dict):
        screened: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = await _screen_context(run, chain, key)
            if new_key in screened:
                new_key = _free_key(screened, new_key)
            screened[new_key] = await _screen_context(run, chain, item)
        return screened
    if isinstance(value, list):
        return [await _screen_context(run, chain, item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A card number sent as a JSON number is still one: judged as its digits, and
        # replaced by the redacted text only when a guardrail changed it.
        text = str(value)
        screened = await _screen_context(run, chain, text)
        return value if screened == text else screened
    return value


def _free_key(taken: dict[Any, Any], key: Any) -> str:
    number = 2
    while f"{key} ({number})" in taken:
        number += 1
    return f"{key} ({number})"


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


async def guard_tool_result(
    run: RunState, chain: GuardrailChain, result: ActionResult
) -> ActionResult:
    """Apply the ``tool_results`` side to one tool result; return the result to use from here
    on (``result`` itself when nothing changed).

    Call it once per result, as soon as the tool returns: what it returns is the only form of
    the result that may be emitted, stored or shown to the model. The verdicts that changed
    the result are in the returned ``guardrails``; :func:`record_tool_result` records them.
    """
    if not chain.tool_results:
        return result
    checked = await chain.check_tool_result(result.content, run)
    changed = [v for v in checked.verdicts if v.action is not Action.ALLOW]
    if not changed:
        return result
    steps = [
        {**v.as_step(Side.TOOL_RESULT), "call_id": result.call_id, "tool": result.name}
        for v in changed
    ]
    update: dict[str, object] = {"guardrails": [*result.guardrails, *steps]}
    if checked.blocked is not None:
        update["ok"] = False
        update["content"] = WITHHELD_MESSAGE.format(
            tool=result.name, guardrail=checked.blocked.guardrail
        )
    else:
        update["content"] = checked.text
    return result.model_copy(update=update)


def record_tool_result(run: RunState, result: ActionResult) -> None:
    """Append the ``guardrail`` steps of the verdicts that redacted or withheld ``result``."""
    for data in result.guardrails:
        run.record("guardrail", **data)

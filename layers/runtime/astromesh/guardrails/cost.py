"""``cost_limit``: stop a run that spends more than allowed.

YAML: ``max_tokens_per_turn`` and/or ``max_cost_per_run`` (US dollars). A turn is one user
message and everything the run does to answer it, so both limits are checked against the
run's usage totals (``run.usage``: tokens in + out over every model call, and cost):

- :meth:`CostGuardrail.usage_verdict` is the between-steps check: the executor asks the
  chain before each step (``GuardrailChain.check_budget``) and stops the run once a limit
  is reached, before it spends more;
- on the output side the same check runs on the final answer (the last step may have gone
  over);
- on the input side, a message whose estimated size alone (4 characters per token)
  exceeds ``max_tokens_per_turn`` is refused before any model sees it.

Shared budgets (``max_cost_per_session``, ``max_cost_per_day``, ``max_tokens_per_day``) span
runs and processes, so they are counted in a :class:`~astromesh.guardrails.ledger.BudgetLedger`
rather than read from ``run.usage``: :meth:`CostGuardrail.budgets` names the ledger keys of a
run (its agent's UTC day, its session's UTC day) and the chain reserves an estimate of each
step against them (:func:`estimate_step`) and settles the real usage after it. See
:mod:`astromesh.guardrails.ledger` for the atomicity and the overshoot bound.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.guardrails.base import Guardrail, Side, Verdict
from astromesh.guardrails.ledger import Budget, Spend, utc_day

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

CHARS_PER_TOKEN = 4
LIMIT_MESSAGE = "This request reached the agent's usage limit."


class CostGuardrail(Guardrail):
    type: ClassVar[str] = "cost_limit"

    def __init__(
        self,
        *,
        max_tokens_per_turn: int | None = None,
        max_cost_per_run: float | None = None,
        max_cost_per_session: float | None = None,
        max_cost_per_day: float | None = None,
        max_tokens_per_day: int | None = None,
        name: str | None = None,
        per_tenant: bool = False,
    ) -> None:
        super().__init__(name=name)
        self.per_tenant = per_tenant
        self.max_tokens_per_turn = max_tokens_per_turn
        self.max_cost_per_run = max_cost_per_run
        self.max_cost_per_session = max_cost_per_session
        self.max_cost_per_day = max_cost_per_day
        self.max_tokens_per_day = max_tokens_per_day

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> CostGuardrail:
        return cls(
            max_tokens_per_turn=cfg.max_tokens_per_turn,
            max_cost_per_run=cfg.max_cost_per_run,
            max_cost_per_session=cfg.max_cost_per_session,
            max_cost_per_day=cfg.max_cost_per_day,
            max_tokens_per_day=cfg.max_tokens_per_day,
            **kwargs,
        )

    @property
    def has_shared_budget(self) -> bool:
        return any(
            v is not None
            for v in (self.max_cost_per_session, self.max_cost_per_day, self.max_tokens_per_day)
        )

    def budgets(self, run: RunState, now: datetime | None = None) -> list[Budget]:
        """The ledger budgets ``run`` counts against today (UTC): its agent's day (all
        sessions, and all tenants unless ``per_tenant``: a registered agent's) and its
        session's day (tenant, agent and session id)."""
        day = utc_day(now)
        agent = f"{run.namespace}/{run.agent}"
        owner = f"tenant:{run.tenant}:" if self.per_tenant else ""
        found: list[Budget] = []
        if self.max_cost_per_day is not None or self.max_tokens_per_day is not None:
            found.append(
                Budget(
                    key=f"day:{day}:agent:{owner}{agent}",
                    label="per day for this agent",
                    max_tokens=self.max_tokens_per_day,
                    max_cost=self.max_cost_per_day,
                )
            )
        if self.max_cost_per_session is not None:
            found.append(
                Budget(
                    key=f"day:{day}:session:{run.tenant}:{agent}:{run.session_id}",
                    label="per session per day",
                    max_cost=self.max_cost_per_session,
                )
            )
        return found

    def usage_verdict(self, run: RunState, *, before_step: bool = True) -> Verdict:
        """Block when the run's usage is at a limit (before a step: nothing is left to
        spend) or over it (on the answer: the last step overspent); allow otherwise."""
        tokens = run.usage.tokens_in + run.usage.tokens_out
        cost = run.usage.cost

        def over(used: float, limit: float | None) -> bool:
            return limit is not None and (used >= limit if before_step else used > limit)

        if over(tokens, self.max_tokens_per_turn):
            return Verdict.block(
                self.name,
                f"used {tokens} tokens, limit {self.max_tokens_per_turn} per turn",
                message=LIMIT_MESSAGE,
            )
        if over(cost, self.max_cost_per_run):
            return Verdict.block(
                self.name,
                f"cost ${cost:.6f}, limit ${self.max_cost_per_run:g} per run",
                message=LIMIT_MESSAGE,
            )
        return Verdict.allow(self.name)

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        if side is Side.INPUT and self.max_tokens_per_turn is not None:
            estimate = -(-len(text) // CHARS_PER_TOKEN)
            if estimate > self.max_tokens_per_turn:
                return Verdict.block(
                    self.name,
                    f"message is about {estimate} tokens, limit {self.max_tokens_per_turn}"
                    " per turn",
                    message="Your message is too long for this agent's usage limit.",
                )
        if side is Side.OUTPUT and run is not None:
            return self.usage_verdict(run, before_step=False)
        return Verdict.allow(self.name)


def run_spend(run: RunState) -> Spend:
    """The run's usage so far as a ledger amount (tokens in + out, cost)."""
    return Spend(run.usage.tokens_in + run.usage.tokens_out, run.usage.cost)


def estimate_step(run: RunState) -> Spend:
    """What the next step is reserved at: the prompt's size (4 characters per token) and,
    once the run has been priced, that many tokens at the run's own cost per token.

    Deliberately the input side only (no output allowance): a low estimate never refuses a
    step the budget could still pay for; the real usage is settled after the step, and the
    ledger's bound holds for any estimate >= 0.
    """
    chars = sum(len(message.content or "") for message in run.messages)
    tokens = -(-chars // CHARS_PER_TOKEN)
    spent = run_spend(run)
    rate = spent.cost / spent.tokens if spent.tokens else 0.0
    return Spend(tokens, tokens * rate)

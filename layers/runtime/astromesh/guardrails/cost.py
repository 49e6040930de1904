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

Per-session and per-agent daily budgets (atomic in Redis) are not configurable yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.guardrails.base import Guardrail, Side, Verdict

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
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.max_tokens_per_turn = max_tokens_per_turn
        self.max_cost_per_run = max_cost_per_run

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> CostGuardrail:
        return cls(
            max_tokens_per_turn=cfg.max_tokens_per_turn,
            max_cost_per_run=cfg.max_cost_per_run,
            **kwargs,
        )

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

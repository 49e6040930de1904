"""Guardrails: checks on the user's message (input), the final answer (output) and what
tools return before the model sees it (tool results).

Each guardrail returns a verdict (allow, redact with the new text, or block with a reason);
a chain applies one side's guardrails in YAML order. See :mod:`.chain` for how the pipeline
uses them and :mod:`.pii`, :mod:`.topic`, :mod:`.content`, :mod:`.length`, :mod:`.cost`,
:mod:`.injection` for each type, and :mod:`.ledger` for the budgets shared by concurrent runs
and processes.
"""

from astromesh.guardrails.base import Action, Guardrail, GuardrailBlocked, Side, Verdict
from astromesh.guardrails.chain import (
    ChainResult,
    GuardrailChain,
    guard_budget,
    guard_input,
    guard_output,
    guard_tool_result,
    record_tool_result,
    reserve_budget,
    settle_budget,
)
from astromesh.guardrails.cost import run_spend
from astromesh.guardrails.factory import build_guardrails
from astromesh.guardrails.ledger import (
    BudgetLedger,
    MemoryBudgetLedger,
    RedisBudgetLedger,
    build_ledger,
)

__all__ = [
    "Action",
    "BudgetLedger",
    "ChainResult",
    "Guardrail",
    "GuardrailBlocked",
    "GuardrailChain",
    "MemoryBudgetLedger",
    "RedisBudgetLedger",
    "Side",
    "Verdict",
    "build_guardrails",
    "build_ledger",
    "guard_budget",
    "guard_input",
    "guard_output",
    "guard_tool_result",
    "record_tool_result",
    "reserve_budget",
    "run_spend",
    "settle_budget",
]

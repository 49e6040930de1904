"""Guardrails: checks on the user's message (input), the final answer (output) and what
tools return before the model sees it (tool results).

Each guardrail returns a verdict (allow, redact with the new text, or block with a reason);
a chain applies one side's guardrails in YAML order. See :mod:`.chain` for how the pipeline
uses them and :mod:`.pii`, :mod:`.topic`, :mod:`.content`, :mod:`.length`, :mod:`.cost`,
:mod:`.injection` for each type, and :mod:`.ledger` for the budgets shared by concurrent runs
and processes.

The names below are imported on first use (the package's ``__getattr__``): importing
:mod:`.chain` for the pipeline does not load every guardrail type and its matcher
(docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "Action": "base",
    "BudgetLedger": "ledger",
    "ChainResult": "chain",
    "Guardrail": "base",
    "GuardrailBlocked": "base",
    "GuardrailChain": "chain",
    "MemoryBudgetLedger": "ledger",
    "RedisBudgetLedger": "ledger",
    "Side": "base",
    "Verdict": "base",
    "build_guardrails": "factory",
    "build_ledger": "ledger",
    "guard_budget": "chain",
    "guard_input": "chain",
    "guard_output": "chain",
    "guard_tool_result": "chain",
    "record_tool_result": "chain",
    "reserve_budget": "chain",
    "run_spend": "cost",
    "settle_budget": "chain",
}

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Guardrails: checks on the user's message (input) and the final answer (output).

Each guardrail returns a verdict (allow, redact with the new text, or block with a reason);
a chain applies one side's guardrails in YAML order. See :mod:`.chain` for how the pipeline
uses them and :mod:`.pii`, :mod:`.topic`, :mod:`.content`, :mod:`.length`, :mod:`.cost`
for each type.
"""

from astromesh.guardrails.base import Action, Guardrail, GuardrailBlocked, Side, Verdict
from astromesh.guardrails.chain import (
    ChainResult,
    GuardrailChain,
    guard_budget,
    guard_input,
    guard_output,
)
from astromesh.guardrails.factory import build_guardrails

__all__ = [
    "Action",
    "ChainResult",
    "Guardrail",
    "GuardrailBlocked",
    "GuardrailChain",
    "Side",
    "Verdict",
    "build_guardrails",
    "guard_budget",
    "guard_input",
    "guard_output",
]

"""``build_guardrails``: an agent's ``spec.guardrails`` as a :class:`GuardrailChain`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from astromesh.errors import ConfigurationError
from astromesh.guardrails.base import Guardrail
from astromesh.guardrails.chain import GuardrailChain
from astromesh.guardrails.content import ContentGuardrail
from astromesh.guardrails.cost import CostGuardrail
from astromesh.guardrails.injection import PromptInjectionGuardrail
from astromesh.guardrails.ledger import BudgetLedger
from astromesh.guardrails.length import MaxLengthGuardrail
from astromesh.guardrails.pii import PiiGuardrail
from astromesh.guardrails.topic import Embedder, TopicGuardrail


def build_guardrails(
    spec: Any | None,
    *,
    embedder: Embedder | None = None,
    default_region: str | None = None,
    ledger: BudgetLedger | None = None,
) -> GuardrailChain:
    """The chain for a ``GuardrailsSpec`` (``None``: no guardrails).

    Args:
        embedder: enables the topic filter's embedding similarity (see :mod:`.topic`).
        default_region: lets PII detection read national phone formats of that country.
        ledger: where ``cost_limit``'s shared budgets (per session, per day) are counted;
            the runtime's one ledger, so they hold across agents' runs and instances.

    Raises:
        ConfigurationError: an unknown PII entity, a guardrail whose library is not
            installed, or a ``cost_limit`` among ``tool_results``. Raised when the agent is
            built, not on the first message.
    """
    if spec is None:
        return GuardrailChain()
    return GuardrailChain(
        input=_build_side(spec.input, embedder=embedder, default_region=default_region),
        output=_build_side(spec.output, embedder=embedder, default_region=default_region),
        tool_results=_build_side(
            spec.tool_results, embedder=embedder, default_region=default_region
        ),
        ledger=ledger,
    )


def _build_side(
    rules: Sequence[Any], *, embedder: Embedder | None, default_region: str | None
) -> list[Guardrail]:
    built: list[Guardrail] = []
    for rule in rules:
        kind = rule.type
        if kind == "pii_detection":
            built.append(PiiGuardrail.from_config(rule, default_region=default_region))
        elif kind == "topic_filter":
            built.append(TopicGuardrail.from_config(rule, embedder=embedder))
        elif kind == "content_filter":
            built.append(ContentGuardrail.from_config(rule))
        elif kind == "max_length":
            built.append(MaxLengthGuardrail.from_config(rule))
        elif kind == "cost_limit":
            built.append(CostGuardrail.from_config(rule))
        elif kind == "prompt_injection":
            built.append(PromptInjectionGuardrail.from_config(rule))
        else:
            raise ConfigurationError(f"guardrail type {kind!r} is not implemented")
    return built

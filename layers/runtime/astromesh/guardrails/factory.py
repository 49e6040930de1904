"""``build_guardrails``: an agent's ``spec.guardrails`` as a :class:`GuardrailChain`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from astromesh.errors import ConfigurationError
from astromesh.guardrails.base import Guardrail
from astromesh.guardrails.chain import GuardrailChain
from astromesh.guardrails.cost import CostGuardrail
from astromesh.guardrails.ledger import BudgetLedger

if TYPE_CHECKING:
    from astromesh.guardrails.topic import Embedder


def build_guardrails(
    spec: Any | None,
    *,
    embedder: Embedder | None = None,
    default_region: str | None = None,
    ledger: BudgetLedger | None = None,
    budgets_per_tenant: bool = False,
) -> GuardrailChain:
    """The chain for a ``GuardrailsSpec`` (``None``: no guardrails).

    Args:
        embedder: enables the topic filter's embedding similarity (see :mod:`.topic`).
        default_region: lets PII detection read national phone formats of that country.
        ledger: where ``cost_limit``'s shared budgets (per session, per day) are counted;
            the runtime's one ledger, so they hold across agents' runs and instances.
        budgets_per_tenant: the agent's daily budget is its tenant's alone (an agent
            registered through the API belongs to one tenant: another tenant's agent of the
            same name must not spend it); a file agent's is shared by every tenant.

    Raises:
        ConfigurationError: an unknown PII entity, a guardrail whose library is not
            installed, or a ``cost_limit`` among ``tool_results``. Raised when the agent is
            built, not on the first message.
    """
    if spec is None:
        return GuardrailChain()
    options = {
        "embedder": embedder,
        "default_region": default_region,
        "budgets_per_tenant": budgets_per_tenant,
    }
    return GuardrailChain(
        input=_build_side(spec.input, **options),
        output=_build_side(spec.output, **options),
        tool_results=_build_side(spec.tool_results, **options),
        ledger=ledger,
    )


def _build_side(
    rules: Sequence[Any],
    *,
    embedder: Embedder | None,
    default_region: str | None,
    budgets_per_tenant: bool,
) -> list[Guardrail]:
    # Each kind's module is imported when an agent uses it: the PII patterns and the injection
    # phrases are not loaded for agents without those guardrails (docs/performance.md).
    built: list[Guardrail] = []
    for rule in rules:
        kind = rule.type
        if kind == "pii_detection":
            from astromesh.guardrails.pii import PiiGuardrail

            built.append(PiiGuardrail.from_config(rule, default_region=default_region))
        elif kind == "topic_filter":
            from astromesh.guardrails.topic import TopicGuardrail

            built.append(TopicGuardrail.from_config(rule, embedder=embedder))
        elif kind == "content_filter":
            from astromesh.guardrails.content import ContentGuardrail

            built.append(ContentGuardrail.from_config(rule))
        elif kind == "max_length":
            from astromesh.guardrails.length import MaxLengthGuardrail

            built.append(MaxLengthGuardrail.from_config(rule))
        elif kind == "cost_limit":
            built.append(CostGuardrail.from_config(rule, per_tenant=budgets_per_tenant))
        elif kind == "prompt_injection":
            from astromesh.guardrails.injection import PromptInjectionGuardrail

            built.append(PromptInjectionGuardrail.from_config(rule))
        else:
            raise ConfigurationError(f"guardrail type {kind!r} is not implemented")
    return built

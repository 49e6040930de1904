"""``spec.guardrails``: checks on the way in (user input), out (model output) and on what tools
return before the model sees it (``tool_results``).

One model per ``type``; each is validated up front (regexes compile, limits are positive) so a
broken rule fails at load time, not on the first message that happens to reach it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from astromesh.config.base import ConfigModel
from astromesh.config.issues import config_error, suggest, with_suggestion

if TYPE_CHECKING:
    from astromesh.security.regex import Pattern


class PiiDetection(ConfigModel):
    """Find personal data; redact it (default) or block the message."""

    type: Literal["pii_detection"]
    action: Literal["redact", "block"] = "redact"
    entities: list[str] | None = None


class MaxLength(ConfigModel):
    """Reject text longer than ``max_chars``."""

    type: Literal["max_length"]
    max_chars: int = Field(gt=0)


class CostLimit(ConfigModel):
    """Stop a turn, a run, a session or an agent's day that would spend more than allowed.

    Per turn / per run limits look at one run's own usage. The shared budgets hold across
    every concurrent run and every process (each Lambda instance) because they are counted
    in a ledger, in Redis when one is configured (see ``astromesh.guardrails.ledger``):

    - ``max_cost_per_session``: currency units one session of this agent may spend per UTC day;
    - ``max_cost_per_day`` / ``max_tokens_per_day``: what the agent may spend per UTC day, all
      sessions and tenants together.

    A shared budget is checked before each step; concurrent runs may together overshoot it by
    at most what their steps already in flight spend (the bound is documented in the ledger
    module).
    """

    type: Literal["cost_limit"]
    max_tokens_per_turn: int | None = Field(None, gt=0)
    max_cost_per_run: float | None = Field(None, gt=0)
    max_cost_per_session: float | None = Field(None, gt=0)
    max_cost_per_day: float | None = Field(None, gt=0)
    max_tokens_per_day: int | None = Field(None, gt=0)

    @property
    def has_shared_budget(self) -> bool:
        """Whether a limit needs the shared ledger (one that spans runs)."""
        return any(
            v is not None
            for v in (self.max_cost_per_session, self.max_cost_per_day, self.max_tokens_per_day)
        )

    @model_validator(mode="after")
    def _some_limit(self) -> CostLimit:
        if (
            self.max_tokens_per_turn is None
            and self.max_cost_per_run is None
            and not self.has_shared_budget
        ):
            raise config_error(
                "cost_limit needs 'max_tokens_per_turn' or 'max_cost_per_run', or a shared"
                " budget ('max_cost_per_session', 'max_cost_per_day', 'max_tokens_per_day')"
            )
        return self


class ContentFilter(ConfigModel):
    """Forbidden keywords (case-insensitive) and regex patterns.

    ``categories`` (upstream's, also ``blocked_categories``) are accepted and not enforced:
    the loader warns (:mod:`astromesh.config.compat`)."""

    type: Literal["content_filter"]
    forbidden_keywords: list[str] = Field(default_factory=list)
    blocked_patterns: list[str] = Field(default_factory=list)
    categories: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("categories", "blocked_categories")
    )
    action: Literal["block", "redact"] = "block"

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise config_error(
                    f"invalid regular expression '{pattern}': {exc}", field=str(i)
                ) from None
        return patterns

    @model_validator(mode="after")
    def _something_to_filter(self) -> ContentFilter:
        if not (self.forbidden_keywords or self.blocked_patterns or self.categories):
            raise config_error("content_filter needs 'forbidden_keywords' or 'blocked_patterns'")
        return self

    def compiled_patterns(self) -> list[Pattern]:
        """The patterns, compiled (they are known to compile), on RE2 where it accepts them
        (:mod:`astromesh.security.regex`: linear time whatever the text)."""
        from astromesh.security.regex import compile_pattern

        return [compile_pattern(p) for p in self.blocked_patterns]


class TopicFilter(ConfigModel):
    """Refuse conversations about listed topics (``blocked_topics`` is upstream's name).

    Upstream's ``allowed_topics`` is accepted and not enforced (the loader warns): telling
    that a message stays on topic needs a classifier, where a forbidden topic is a match."""

    type: Literal["topic_filter"]
    forbidden_topics: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("forbidden_topics", "blocked_topics")
    )
    allowed_topics: list[str] = Field(default_factory=list)
    action: Literal["block", "redact"] = "block"

    @model_validator(mode="after")
    def _some_topics(self) -> TopicFilter:
        if not (self.forbidden_topics or self.allowed_topics):
            raise config_error("topic_filter needs 'forbidden_topics' (a non-empty list)")
        return self


class PromptInjection(ConfigModel):
    """Instructions planted in text (a fetched page, a retrieved passage) that try to steer
    the agent: a curated list of phrasings (see ``astromesh.guardrails.injection`` for the
    rules and the limits of a heuristic), plus ``extra_patterns`` of your own."""

    type: Literal["prompt_injection"]
    action: Literal["block", "redact"] = "block"
    extra_patterns: list[str] = Field(default_factory=list)
    exclude_rules: list[str] = Field(default_factory=list)

    @field_validator("extra_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise config_error(
                    f"invalid regular expression '{pattern}': {exc}", field=str(i)
                ) from None
        return patterns

    @field_validator("exclude_rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        from astromesh.guardrails.injection import RULE_IDS  # the rules live with the code

        for i, rule in enumerate(rules):
            if rule not in RULE_IDS:
                hint = suggest(rule, RULE_IDS)
                raise config_error(
                    with_suggestion(
                        f"unknown prompt_injection rule '{rule}'; known rules: "
                        + ", ".join(RULE_IDS),
                        hint,
                    ),
                    field=str(i),
                    suggestion=hint,
                )
        return rules


AnyGuardrail = Annotated[
    PiiDetection | MaxLength | CostLimit | ContentFilter | TopicFilter | PromptInjection,
    Field(discriminator="type"),
]
"""Any guardrail rule; pydantic picks the class by ``type``."""


class GuardrailsSpec(ConfigModel):
    """The rules of each side, applied in the order written.

    ``tool_results`` (ours; upstream has input and output only) screens each tool result
    before it enters the conversation: a redaction replaces the result, a block hands the
    model a short neutral "withheld" message instead and the run goes on (see
    ``astromesh.guardrails.chain``). ``cost_limit`` is refused there: a budget bounds the
    run's usage, not a text, and is enforced between steps wherever it is declared.
    """

    input: list[AnyGuardrail] = Field(default_factory=list)
    output: list[AnyGuardrail] = Field(default_factory=list)
    tool_results: list[AnyGuardrail] = Field(default_factory=list)

    @field_validator("tool_results")
    @classmethod
    def _no_budget_on_tool_results(cls, rules: list[AnyGuardrail]) -> list[AnyGuardrail]:
        for i, rule in enumerate(rules):
            if isinstance(rule, CostLimit):
                raise config_error(
                    "cost_limit does not apply to tool results: it limits the run's usage,"
                    " not a text; declare it under 'input' or 'output'",
                    field=f"{i}.type",
                )
        return rules

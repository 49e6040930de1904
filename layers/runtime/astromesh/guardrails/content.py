"""``content_filter``: forbidden keywords and regex patterns; block (default) or redact.

YAML: ``forbidden_keywords`` (case-insensitive whole words or phrases, so "ass" does not
fire on "class"), ``blocked_patterns`` (regular expressions, compiled once when the agent
is built, applied to the text as written; use ``(?i)`` for case-insensitivity) and
``action: block | redact``. Redaction replaces each match with ``[REDACTED]``.

Verdicts name the rule by its position in the YAML ("keyword #2", "pattern #1"), not by
the word: a forbidden word in the recorded reason would store part of what was blocked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.guardrails._text import PhraseMatcher, fold
from astromesh.guardrails.base import Guardrail, Side, Verdict
from astromesh.security.regex import Pattern, compile_pattern

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

REDACTED = "[REDACTED]"


class ContentGuardrail(Guardrail):
    """Blocks or redacts forbidden words and patterns."""

    type: ClassVar[str] = "content_filter"

    def __init__(
        self,
        *,
        keywords: Sequence[str] = (),
        patterns: Sequence[Pattern | str] = (),
        action: str = "block",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.action = action
        self.matcher = PhraseMatcher(keywords)
        self._keyword_number: dict[str, int] = {}
        for i, keyword in enumerate(keywords, start=1):
            self._keyword_number.setdefault(fold(keyword.strip())[0], i)
        self.patterns = [compile_pattern(p) if isinstance(p, str) else p for p in patterns]

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> ContentGuardrail:
        return cls(
            keywords=cfg.forbidden_keywords,
            patterns=cfg.compiled_patterns(),
            action=cfg.action,
            **kwargs,
        )

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        spans = [
            (m.start, m.end, f"keyword #{self._keyword_number[m.phrase]}")
            for m in self.matcher.find(text)
        ]
        for i, pattern in enumerate(self.patterns):
            spans += [
                (m.start(), m.end(), f"pattern #{i + 1}")
                for m in pattern.finditer(text)
                if m.end() > m.start()
            ]
        return spans

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        spans = self._spans(text)
        if not spans:
            return Verdict.allow(self.name)
        counts = dict(Counter(rule for _, _, rule in spans))
        rules = ", ".join(sorted(counts))
        if self.action == "block":
            subject = side.subject
            return Verdict.block(
                self.name,
                f"forbidden content: {rules}",
                message=f"{subject} contains content this agent does not accept.",
                findings=counts,
            )
        return Verdict.redact(self.name, _replace(text, spans), f"redacted {rules}", counts)


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace the union of ``spans`` (overlaps merged) with one placeholder each."""
    merged: list[list[int]] = []
    for start, end, _ in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], REDACTED]
        last = end
    out.append(text[last:])
    return "".join(out)

"""``prompt_injection``: a heuristic against instructions planted in text the agent reads.

Meant above all for ``spec.guardrails.tool_results``: a fetched web page, an MCP server's
answer or a retrieved passage may contain text written *for the model* ("ignore your previous
instructions and ...") — indirect prompt injection. On the input side it catches the
crudest direct attempts too.

YAML: ``action: block | redact`` (default ``block``), ``extra_patterns`` (your own regular
expressions) and ``exclude_rules`` (ids of built-in rules to turn off, for false positives).
On ``tool_results`` a block withholds the result (the model gets a neutral message instead)
and the run goes on; ``redact`` replaces each match with :data:`REMOVED` and keeps the rest.

The built-in rules (:data:`RULES`), each a curated regular expression:

======================  ==================================================================
rule                    what it looks for
======================  ==================================================================
``ignore_instructions`` "ignore / disregard / forget / override (all) previous | prior |
                        above | system ... instructions | prompts | rules"
``new_instructions``    "new instructions:", "your real task is", "from now on you must"
``role_override``       "you are now DAN / an unrestricted ...", "enable jailbreak mode"
``chat_markup``         chat-template control tokens in plain text: ``<|im_start|>``,
                        ``[INST]``, ``<<SYS>>``, ``<|start_header_id|>``, ``<start_of_turn>``
``prompt_leak``         "reveal / print / repeat your system prompt | instructions"
``concealment``         "do not tell the user", "without informing the user"
``exfiltration``        "send the conversation | credentials | api keys ... to <URL or
                        address>"
======================  ==================================================================

Matching runs on a normalised copy of the text: Unicode NFKC (full-width letters become
ASCII), lower case, invisible format characters (zero-width spaces, bidi controls, soft
hyphens) removed, typographic apostrophes made plain. Spans map back to the original text,
so a redaction removes exactly what matched. ``extra_patterns`` are matched against that
normalised copy as well: write them in lower case.

Limits, stated plainly: this is a tripwire, not a defence. It recognises common English
phrasings only; paraphrases, other languages, text split across results, encodings (base64,
leetspeak), homoglyphs other than NFKC's, and instructions hidden in images or markup it
never sees all pass. It can also fire on text that merely *discusses* prompt injection
(security articles), hence ``exclude_rules``. Keep the agent's real protections in place:
least-privilege tools (``permissions.allowed_actions``), client tools for consequential
actions, and output guardrails.

Verdicts name rules ("ignore_instructions x1", "pattern #2"), never the matched text.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.errors import ConfigurationError
from astromesh.guardrails.base import Guardrail, Side, Verdict
from astromesh.security.regex import Pattern, compile_pattern

if TYPE_CHECKING:
    from astromesh.runs.state import RunState

REMOVED = "[REMOVED INSTRUCTION]"

_W = r"\s+"
_QUAL = (
    r"(?:previous|prior|above|earlier|preceding|foregoing|system|original|initial|existing"
    r"|developer|old)"
)
_TARGET = (
    r"(?:instructions?|prompts?|rules|directives?|guidelines|guardrails|commands?|messages"
    r"|context|programming)"
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One built-in rule: its id (used in YAML and verdicts) and its expression."""

    id: str
    pattern: re.Pattern[str]


def _rule(rule_id: str, *alternatives: str) -> Rule:
    return Rule(rule_id, re.compile("|".join(f"(?:{a})" for a in alternatives)))


RULES: tuple[Rule, ...] = (
    _rule(
        "ignore_instructions",
        rf"\b(?:ignore|disregard|forget|override|bypass|discard)\s+(?:(?:all|any|every|each|the"
        rf"|of|your|my|these|those|its|other){_W}){{0,3}}{_QUAL}\s+(?:[a-z]+{_W}){{0,2}}?{_TARGET}\b",
        rf"\b(?:ignore|disregard|forget)\s+(?:all|any|everything)\s+(?:of\s+)?"
        rf"(?:(?:your|the|other){_W}){{0,2}}(?:[a-z]+{_W})?{_TARGET}\b",
        r"\bforget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)\b",
    ),
    _rule(
        "new_instructions",
        r"\b(?:new|updated|revised|real|actual|true|additional|hidden|secret)\s+(?:system\s+)?"
        r"(?:instructions?|directives?|task|orders|objective)\s*:",
        r"\byour\s+(?:new|real|actual|true|only)\s+(?:task|instructions?|goal|objective|role"
        r"|purpose|job)\s+(?:is|are|now)\b",
        r"\bfrom\s+now\s+on,?\s+(?:you|the\s+(?:assistant|ai|model|agent))\s+(?:are|will|must"
        r"|should|shall|may)\b",
    ),
    _rule(
        "role_override",
        r"\byou\s+are\s+(?:now\s+)?(?:dan\b|(?:an?\s+)?(?:unrestricted|unfiltered|uncensored"
        r"|jailbroken)\b|(?:now\s+)?in\s+(?:developer|god|jailbreak|dan)\s+mode\b)",
        r"\b(?:enable|enter|activate|switch\s+to)\s+(?:dan|jailbreak|god)\s+mode\b",
        r"\b(?:act|behave|respond)\s+as\s+(?:an?\s+)?(?:unrestricted|unfiltered|uncensored"
        r"|jailbroken)\b",
    ),
    _rule(
        "chat_markup",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
        r"|end_header_id|begin_of_text)\|>",
        r"\[/?inst\]",
        r"<</?sys>>",
        r"<(?:start|end)_of_turn>",
    ),
    _rule(
        "prompt_leak",
        rf"\b(?:reveal|print|show|repeat|output|leak|disclose|display|dump|recite|tell\s+me)\s+"
        rf"(?:me\s+)?(?:your\s+(?:[a-z]+{_W})?(?:system\s+prompt|system\s+message|instructions"
        rf"|initial\s+prompt|prompt)|the\s+(?:[a-z]+{_W})?(?:system\s+prompt|system\s+message"
        rf"|hidden\s+instructions|secret\s+instructions|developer\s+message))\b",
    ),
    _rule(
        "concealment",
        r"\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention|reveal|show|alert|notify|let)\b"
        r"[^.\n]{0,30}?\bthe\s+user\b",
        r"\bwithout\s+(?:telling|informing|notifying|alerting|asking)\s+the\s+user\b",
        r"\bthe\s+user\s+(?:must|should)\s+(?:not|never)\s+(?:know|find\s+out|see|be\s+told)\b",
    ),
    _rule(
        "exfiltration",
        rf"\b(?:send|forward|post|upload|exfiltrate|e-?mail|transmit|copy)\s+(?:(?:all|the|this"
        rf"|your|every|any|of){_W}){{0,3}}(?:[a-z]+{_W})?(?:conversation|chat|messages?|history"
        rf"|credentials|passwords?|api\s+keys?|secrets?|tokens?|context|system\s+prompt"
        rf"|personal\s+data)\b[^\n]{{0,60}}?\b(?:to|at)\s+(?:https?://|[\w.+-]+@[\w-]+\.)",
    ),
)

RULE_IDS: tuple[str, ...] = tuple(rule.id for rule in RULES)
"""The built-in rules' ids, in order (``exclude_rules`` is checked against these)."""

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})


def normalise(text: str) -> tuple[str, list[int] | None]:
    """The text rules match against, and for each of its characters the index of the
    original character it came from (``None``: the same index, for ASCII text).

    ASCII text only needs lower-casing, which keeps positions; anything else goes character
    by character (NFKC, invisible format characters dropped, apostrophes made plain).
    """
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        for low in unicodedata.normalize("NFKC", ch.translate(_APOSTROPHES)).lower():
            out.append(low)
            origin.append(i)
    return "".join(out), origin


class PromptInjectionGuardrail(Guardrail):
    """Blocks (or redacts) text that reads like instructions addressed to the model.

    Args:
        action: ``block`` refuses the text; ``redact`` replaces each match with
            :data:`REMOVED`.
        extra_patterns: more expressions, matched against the normalised (lower-case) text;
            verdicts call them ``pattern #n``.
        exclude_rules: built-in rule ids not to apply.
    """

    type: ClassVar[str] = "prompt_injection"

    def __init__(
        self,
        *,
        action: str = "block",
        extra_patterns: Sequence[Pattern | str] = (),
        exclude_rules: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        unknown = sorted(set(exclude_rules) - set(RULE_IDS))
        if unknown:
            raise ConfigurationError(
                f"prompt_injection: unknown rules {', '.join(unknown)}; known rules: "
                + ", ".join(RULE_IDS)
            )
        self.action = action
        self.rules: list[tuple[str, Pattern]] = [
            (rule.id, rule.pattern) for rule in RULES if rule.id not in set(exclude_rules)
        ]
        for i, pattern in enumerate(extra_patterns, start=1):
            compiled = compile_pattern(pattern) if isinstance(pattern, str) else pattern
            self.rules.append((f"pattern #{i}", compiled))

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> PromptInjectionGuardrail:
        return cls(
            action=cfg.action,
            extra_patterns=cfg.extra_patterns,
            exclude_rules=cfg.exclude_rules,
            **kwargs,
        )

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """``(start, end, rule)`` of every match, as spans of the original ``text``."""
        folded, origin = normalise(text)
        spans: list[tuple[int, int, str]] = []
        for rule_id, pattern in self.rules:
            for m in pattern.finditer(folded):
                if m.end() <= m.start():
                    continue
                if origin is None:
                    spans.append((m.start(), m.end(), rule_id))
                else:
                    spans.append((origin[m.start()], origin[m.end() - 1] + 1, rule_id))
        return sorted(spans)

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        spans = self.find(text)
        if not spans:
            return Verdict.allow(self.name)
        counts = dict(Counter(rule for _, _, rule in spans))
        summary = ", ".join(f"{rule} x{n}" for rule, n in sorted(counts.items()))
        if self.action == "block":
            return Verdict.block(
                self.name,
                f"possible prompt injection: {summary}",
                message=f"{side.subject} contains instructions addressed to the agent and was"
                " blocked.",
                findings=counts,
            )
        return Verdict.redact(
            self.name, _remove(text, spans), f"removed possible prompt injection: {summary}", counts
        )


def _remove(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace the union of ``spans`` (overlaps merged) with one :data:`REMOVED` each."""
    merged: list[list[int]] = []
    for start, end, _ in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[str] = []
    last = 0
    for start, end in merged:
        out += [text[last:start], REMOVED]
        last = end
    out.append(text[last:])
    return "".join(out)

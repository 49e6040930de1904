"""Case- and whitespace-insensitive matching of keywords and phrases, on word boundaries.

Used by the topic and content filters. Text and phrases are lower-cased and runs of
whitespace collapsed, while remembering where each folded character came from, so a match
can be redacted in the original text. Matching uses an Aho-Corasick automaton
(``pyahocorasick``, one pass whatever the number of phrases) when installed, and otherwise
one compiled regex alternation; both apply the same word-boundary rule, so they agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

try:  # optional: the guardrails extra
    import ahocorasick as _ahocorasick
except ImportError:  # pragma: no cover - exercised by forcing the regex path in tests
    _ahocorasick = None

HAS_AHOCORASICK = _ahocorasick is not None


@dataclass(frozen=True, slots=True)
class Match:
    start: int
    end: int
    phrase: str
    """The configured phrase (folded) that matched."""


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` lower-cased with whitespace runs collapsed to one space, and for each folded
    character the index of the original character it came from."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if out and out[-1] == " ":
                continue
            out.append(" ")
            origin.append(i)
            continue
        for low in ch.lower():
            out.append(low)
            origin.append(i)
    return "".join(out), origin


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class PhraseMatcher:
    """Finds configured phrases in text as whole words (optionally with a plural ending).

    Args:
        phrases: keywords or multi-word phrases; empty ones are ignored.
        plurals: also match the phrase followed by ``s`` or ``es`` ("weapon" finds
            "weapons").
        use_automaton: ``False`` forces the regex path (tests compare both).
    """

    def __init__(
        self, phrases: Iterable[str], *, plurals: bool = False, use_automaton: bool = True
    ) -> None:
        folded = {fold(p.strip())[0] for p in phrases}
        self.phrases = sorted((p for p in folded if p), key=lambda p: (-len(p), p))
        self.plurals = plurals
        self._automaton: Any = None
        self._regex: re.Pattern[str] | None = None
        if use_automaton and _ahocorasick is not None and self.phrases:
            automaton = _ahocorasick.Automaton()
            for phrase in self.phrases:
                automaton.add_word(phrase, phrase)
            automaton.make_automaton()
            self._automaton = automaton
        elif self.phrases:
            self._regex = re.compile("|".join(self._alternative(p) for p in self.phrases))

    def _alternative(self, phrase: str) -> str:
        """The phrase as a regex with the same boundary and plural rules as the automaton."""
        head = r"(?<!\w)" if _is_word(phrase[0]) else ""
        tail = ""
        if _is_word(phrase[-1]):
            tail = ("(?:e?s)?" if self.plurals else "") + r"(?!\w)"
        return f"{head}{re.escape(phrase)}{tail}"

    def find(self, text: str) -> list[Match]:
        """Non-overlapping matches in ``text`` (leftmost, then longest), as original spans."""
        if not self.phrases:
            return []
        folded, origin = fold(text)
        spans = self._automaton_spans(folded) if self._automaton is not None else []
        if self._regex is not None:
            spans = [
                (m.start(), m.end(), self._phrase_of(m.group(0)))
                for m in self._regex.finditer(folded)
            ]
        chosen: list[tuple[int, int, str]] = []
        for start, end, phrase in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
            if chosen and start < chosen[-1][1]:
                continue
            chosen.append((start, end, phrase))
        return [Match(origin[s], origin[e - 1] + 1, p) for s, e, p in chosen]

    def _phrase_of(self, matched: str) -> str:
        return next((p for p in self.phrases if matched.startswith(p)), matched)

    def _automaton_spans(self, folded: str) -> list[tuple[int, int, str]]:
        spans = []
        for last, phrase in self._automaton.iter(folded):
            start, end = last - len(phrase) + 1, last + 1
            if start > 0 and _is_word(folded[start - 1]) and _is_word(phrase[0]):
                continue
            end = self._word_end(folded, end, phrase)
            if end is not None:
                spans.append((start, end, phrase))
        return spans

    def _word_end(self, folded: str, end: int, phrase: str) -> int | None:
        """Where the match ends if it ends on a word boundary (after a plural ending)."""
        if not _is_word(phrase[-1]):
            return end
        endings = [end]
        if self.plurals and folded.startswith("s", end):
            endings.insert(0, end + 1)
        if self.plurals and folded.startswith("es", end):
            endings.insert(0, end + 2)
        for ending in endings:
            if ending >= len(folded) or not _is_word(folded[ending]):
                return ending
        return None

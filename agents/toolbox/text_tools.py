"""Python tools for the shipped ``text-analyst`` agent.

Plain functions with type hints: the runtime derives each tool's JSON Schema from them.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

_WORD = re.compile(r"[\w'-]+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")


def word_stats(text: str) -> dict[str, int]:
    """Count words, sentences and characters of ``text``."""
    words = _WORD.findall(text)
    sentences = len(_SENTENCE_END.findall(text)) or (1 if text.strip() else 0)
    return {
        "words": len(words),
        "sentences": sentences,
        "characters": len(text),
        "unique_words": len({w.lower() for w in words}),
    }


def compare_texts(first: str, second: str) -> dict[str, object]:
    """Similarity ratio of two texts and the words only one of them uses."""
    a = {w.lower() for w in _WORD.findall(first)}
    b = {w.lower() for w in _WORD.findall(second)}
    return {
        "similarity": round(SequenceMatcher(None, first, second).ratio(), 3),
        "only_in_first": sorted(a - b),
        "only_in_second": sorted(b - a),
    }

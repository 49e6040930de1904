"""Splitting a long reply into messages a platform accepts.

WhatsApp and Telegram refuse a text over 4096 characters, and both count characters the way
JavaScript does (UTF-16 code units: an emoji outside the Basic Multilingual Plane counts
twice), so lengths are measured that way here. A cut prefers, in order, a paragraph break, a
line break, the end of a sentence and a space, each only if it keeps the part at least half
full (a cut at the first full stop of a long paragraph would leave a stub); a text without
any of those is cut hard, never inside a surrogate pair.
"""

from __future__ import annotations

import re

# Sentence ends (ASCII, ellipsis, CJK full stop and fullwidth marks), then closing quotes.
_SENTENCE_END = re.compile("[.!?\u2026\u3002\uff01\uff1f][\"')\\]\u00bb\u201d\u2019]*\\s")
_SPACE = re.compile(r"\s")


def utf16_len(text: str) -> int:
    """Length as the platforms count it."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-16 units; ``[text]`` when it fits.

    Whitespace at a cut is dropped; nothing else is. An empty text gives no parts.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            parts.append(rest)
            break
        window = _prefix_within(rest, limit)
        cut = _best_cut(window)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return parts


def _prefix_within(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-16 length is at most ``limit``."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def _best_cut(window: str) -> int:
    """Where to end a part taken from ``window`` (an index into it, > 0)."""
    floor = len(window) // 2
    for finder in (_last_paragraph, _last_line, _last_sentence, _last_space):
        cut = finder(window)
        if cut is not None and cut >= floor:
            return cut
    return len(window)


def _last_paragraph(window: str) -> int | None:
    index = window.rfind("\n\n")
    return index if index > 0 else None


def _last_line(window: str) -> int | None:
    index = window.rfind("\n")
    return index if index > 0 else None


def _last_sentence(window: str) -> int | None:
    ends = [match.end() for match in _SENTENCE_END.finditer(window)]
    return ends[-1] if ends else None


def _last_space(window: str) -> int | None:
    ends = [match.start() for match in _SPACE.finditer(window)]
    return ends[-1] if ends and ends[-1] > 0 else None

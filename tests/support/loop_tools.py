"""Tools for the step-loop executor tests (imported as ``tests.support.large_tools:...``)."""

from __future__ import annotations


def big_text(size: int) -> str:
    """A result of ``size`` characters whose end differs from its start (to see truncation)."""
    line = "0123456789abcdefghijklmnopqrstuvwxyz\n"
    body = (line * (size // len(line) + 1))[: max(size - 4, 0)]
    return body + "END!"[: size - len(body)]

"""Tools for the step-loop executor tests (imported as ``tests.support.loop_tools:...``)."""

from __future__ import annotations

import asyncio


def big_text(size: int) -> str:
    """A result of ``size`` characters whose end differs from its start (to see truncation)."""
    line = "0123456789abcdefghijklmnopqrstuvwxyz\n"
    body = (line * (size // len(line) + 1))[: max(size - 4, 0)]
    return body + "END!"[: size - len(body)]


CALLS: dict[str, int] = {}
"""How often :func:`counted` ran per key (to see that a retried task does not run twice)."""


def counted(key: str) -> int:
    """Counts its calls per ``key`` and returns the count."""
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


async def slow(seconds: float) -> str:
    """Sleeps, then answers (to run into a time limit)."""
    await asyncio.sleep(seconds)
    return "woke up"

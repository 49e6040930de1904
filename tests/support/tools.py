"""Python tool handlers used by the runtime tests (imported as ``tests.support.tools:...``)."""

from __future__ import annotations

import asyncio

from astromesh.tools import ToolContext

_waiting: dict[str, asyncio.Event] = {}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def explode(reason: str) -> str:
    """Always fails, to show a tool failure does not kill the run."""
    raise ValueError(reason)


async def rendezvous(name: str, context: ToolContext) -> str:
    """Returns 'together' only if a second call of the same run is running at the same time.

    Two calls in one step succeed only when the runtime executes them concurrently; run one
    after the other, the first would wait out its timeout and report 'alone'.
    """
    event = _waiting.get(context.run_id)
    if event is not None:
        event.set()
        return "together"
    event = _waiting[context.run_id] = asyncio.Event()
    try:
        await asyncio.wait_for(event.wait(), timeout=2.0)
    except TimeoutError:
        return "alone"
    finally:
        _waiting.pop(context.run_id, None)
    return "together"


def broken_text(topic: str) -> dict[str, str]:
    """Answers with a lone surrogate and a NUL, as a careless tool (or a hostile MCP server)
    might: the run must still be stored and answered, with the text repaired."""
    return {"topic": topic, "summary": "before \ud800 middle \x00 after"}

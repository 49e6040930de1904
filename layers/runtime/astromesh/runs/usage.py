"""Model calls made outside a pattern's step, counted into the run that caused them.

A run's usage (tokens, cost: what ``cost_limit`` budgets, run responses and the
``RunCostUSD`` metric read) must hold every model call the run caused. The pattern's steps
add theirs to the run directly. Two kinds of call happen where the run is not at hand:

- the conversation summary folded when a run ends (the ``summary`` memory strategy);
- a tool that calls a model (the builtin ``text_summarize``).

Those report to the innermost :func:`counting` block around them, through a context
variable: each tool call runs in its own asyncio task (which copies the context), so calls
made concurrently by different tools are counted into their own call's list. A call made
outside any block (a summariser used on its own) is simply not counted anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from astromesh.models.types import Usage

if TYPE_CHECKING:
    from astromesh.models.types import ModelResponse

SUMMARY_ROLE = "summary"
"""The ``role`` of a summarising call in the run's ``usage.by_model`` lines."""


class ModelCall(BaseModel):
    """One model call's usage, as :meth:`RunUsage.add` counts it."""

    provider: str
    model: str
    role: str
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0


_calls: ContextVar[list[ModelCall] | None] = ContextVar("astromesh_model_calls", default=None)


@contextmanager
def counting() -> Iterator[list[ModelCall]]:
    """Collect the side calls made inside the block (and in tasks it starts)."""
    calls: list[ModelCall] = []
    token = _calls.set(calls)
    try:
        yield calls
    finally:
        _calls.reset(token)


def count(response: ModelResponse, role: str = SUMMARY_ROLE) -> None:
    """Report one finished call to the innermost :func:`counting` block, if any."""
    calls = _calls.get()
    if calls is not None:
        calls.append(
            ModelCall(
                provider=response.provider,
                model=response.model,
                role=role,
                usage=response.usage,
                cost=response.cost or 0.0,
            )
        )

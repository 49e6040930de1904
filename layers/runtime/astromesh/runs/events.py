"""Events a run emits while it executes, for channels that stream (CLI, WebSocket, SSE).

The ``type`` names are the WebSocket frame types of the ``/v1`` contract: ``status``,
``token``, ``tool_call``, ``tool_result``, ``done``, ``error``.

Whether a sink shows ``token`` events decides how the model is called: a streamed request
when someone reads the answer as it is generated, one whole JSON answer when nobody does (a
REST call, a Step Functions stage, a child run), which costs a fraction of the CPU. A sink
says it wants none by being (or wrapping itself in) :class:`WithoutTokens`; any other sink
is assumed to show them, so a channel that streams needs nothing of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RunEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> dict[str, Any]:
        """The JSON frame sent to streaming clients."""
        return {"type": self.type, **self.data}


EventSink = Callable[[RunEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WithoutTokens:
    """A sink that takes a run's events but no ``token`` events: its consumer shows only the
    whole answer (the ``done`` frame), so the model is asked for it in one piece.

    ``sink`` gets every other event; ``None`` drops them all (:data:`discard`).
    """

    sink: EventSink | None = None

    async def __call__(self, event: RunEvent) -> None:
        if self.sink is not None and event.type != "token":
            await self.sink(event)


def wants_tokens(sink: EventSink) -> bool:
    """Whether ``sink`` shows ``token`` events (any sink but a :class:`WithoutTokens`)."""
    return not isinstance(sink, WithoutTokens)


discard: EventSink = WithoutTokens()
"""The sink used when nobody listens."""

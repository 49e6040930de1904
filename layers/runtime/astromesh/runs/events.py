"""Events a run emits while it executes, for channels that stream (CLI, WebSocket, SSE).

The ``type`` names are the WebSocket frame types of the ``/v1`` contract: ``status``,
``token``, ``tool_call``, ``tool_result``, ``done``, ``error``.
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


async def discard(_event: RunEvent) -> None:
    """The sink used when nobody listens."""

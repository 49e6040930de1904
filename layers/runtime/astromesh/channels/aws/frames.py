"""Delivering a run's frames through a per-call API: tokens coalesced, big frames split.

On API Gateway every WebSocket message is one ``post_to_connection`` call (a network round
trip and a billed request), and a model streams a token every few milliseconds. So
:class:`FramePusher` keeps consecutive ``token`` frames in a buffer and posts them as one
``token`` frame whose ``content`` is their concatenation, when ``flush_seconds`` have passed
since the first buffered token, when ``flush_tokens`` are buffered, or before any other
frame (order is kept). A client sees the same protocol, only in fewer, longer tokens.

API Gateway also limits a frame to 32 KB. :func:`split_frame` keeps every message under
``frame_bytes``: a long ``token`` becomes several ``token`` frames; any other frame that is
too long (a ``done`` with a long answer, a large ``tool_result``) is sent as ordered
``{"type": "part", "of", "id", "index", "count", "data"}`` frames whose ``data`` strings,
joined, are the original frame's JSON (the console reassembles them; so can any client).

When the connection is gone (the client left: API Gateway answers 410 ``GoneException``)
the pusher stops posting at once and tells its owner once (``on_gone``), who cancels the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from astromesh.runs.events import RunEvent

logger = logging.getLogger(__name__)

FRAME_LIMIT_BYTES = 32 * 1024
"""API Gateway's WebSocket frame limit."""
DEFAULT_FRAME_BYTES = FRAME_LIMIT_BYTES - 1024
"""What a message may use: the limit less a margin, so a frame is always below it."""
DEFAULT_FLUSH_SECONDS = 0.15
DEFAULT_FLUSH_TOKENS = 64


class ConnectionGone(Exception):
    """The client is no longer connected (410); nothing more can be delivered."""


class DeliveryFailed(Exception):
    """A frame could not be delivered for another reason (after the poster's retries)."""


Post = Callable[[bytes], Awaitable[None]]
"""Sends one message; raises :class:`ConnectionGone` or :class:`DeliveryFailed`."""


def encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def split_frame(frame: dict[str, Any], limit: int = DEFAULT_FRAME_BYTES) -> list[bytes]:
    """``frame`` as one or more encoded messages of at most ``limit`` bytes each."""
    data = encode(frame)
    if len(data) <= limit:
        return [data]
    if frame.get("type") == "token" and isinstance(frame.get("content"), str):
        budget = limit - len(encode({**frame, "content": ""}))
        return [encode({**frame, "content": piece}) for piece in _pieces(frame["content"], budget)]
    frame_id = uuid.uuid4().hex[:16]
    shell = {"type": "part", "of": str(frame.get("type")), "id": frame_id}
    budget = limit - len(encode({**shell, "index": 10**6, "count": 10**6, "data": ""}))
    pieces = _pieces(data.decode(), budget)
    return [
        encode({**shell, "index": index, "count": len(pieces), "data": piece})
        for index, piece in enumerate(pieces)
    ]


def _pieces(text: str, budget: int) -> list[str]:
    """``text`` cut so each piece, JSON-escaped and UTF-8 encoded, fits ``budget`` bytes."""
    if budget < 8:
        raise ValueError("frame limit too small for the frame's other fields")
    pieces: list[str] = []
    start = used = 0
    for index, char in enumerate(text):
        cost = _escaped_bytes(char)
        if used + cost > budget:
            pieces.append(text[start:index])
            start, used = index, 0
        used += cost
    pieces.append(text[start:])
    return pieces


def _escaped_bytes(char: str) -> int:
    code = ord(char)
    if char in '"\\\n\r\t\b\f':
        return 2
    if code < 0x20:
        return 6
    if code < 0x80:
        return 1
    if code < 0x800:
        return 2
    if code < 0x10000:
        return 6 if 0xD800 <= code <= 0xDFFF else 3  # a lone surrogate is escaped
    return 4


class FramePusher:
    """Posts one run's frames to one connection, batched and split (see the module doc)."""

    def __init__(
        self,
        post: Post,
        *,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        flush_tokens: int = DEFAULT_FLUSH_TOKENS,
        frame_bytes: int = DEFAULT_FRAME_BYTES,
        on_gone: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._post = post
        self.flush_seconds = flush_seconds
        self.flush_tokens = flush_tokens
        self.frame_bytes = frame_bytes
        self._on_gone = on_gone
        self._tokens: list[str] = []
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.gone = False
        self.posted = 0
        """Messages posted (what the API bills)."""

    async def emit(self, event: RunEvent) -> None:
        """Queue or post one event's frame (an :data:`~astromesh.runs.events.EventSink`)."""
        if self.gone:
            return
        frame = event.frame()
        if frame["type"] == "token" and set(frame) == {"type", "content"}:
            self._tokens.append(str(frame["content"]))
            if len(self._tokens) >= self.flush_tokens:
                await self.flush()
            elif self._timer is None:
                self._timer = asyncio.create_task(self._flush_later())
            return
        async with self._lock:
            await self._flush_tokens()
            await self._send(frame)

    async def flush(self) -> None:
        """Post the buffered tokens now."""
        async with self._lock:
            await self._flush_tokens()

    async def close(self) -> None:
        """Flush what is left and stop the timer."""
        await self.flush()
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_seconds)
        self._timer = None
        await self.flush()

    async def _flush_tokens(self) -> None:
        """Under the lock: the buffered tokens as one (split if need be) token frame."""
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None
        if not self._tokens:
            return
        content, self._tokens = "".join(self._tokens), []
        await self._send({"type": "token", "content": content})

    async def _send(self, frame: dict[str, Any]) -> None:
        """Under the lock: post ``frame`` (split if too long) unless the client left."""
        for message in split_frame(frame, self.frame_bytes):
            if self.gone:
                return
            try:
                await self._post(message)
            except ConnectionGone:
                self.gone = True
                self._tokens.clear()
                logger.info("connection gone; delivery stopped")
                if self._on_gone is not None:
                    await self._on_gone()
                return
            except DeliveryFailed as exc:
                logger.error("frame type=<%s> not delivered: %s", frame.get("type"), exc)
                return
            self.posted += 1

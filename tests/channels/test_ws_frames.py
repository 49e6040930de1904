"""Frames on API Gateway: split below 32 KB, tokens batched, a gone client stops delivery."""

from __future__ import annotations

import asyncio
import json

import pytest

from astromesh.channels.aws.frames import (
    FRAME_LIMIT_BYTES,
    ConnectionGone,
    DeliveryFailed,
    FramePusher,
    split_frame,
)
from astromesh.runs.events import RunEvent


def reassemble(messages: list[bytes]) -> list[dict]:
    """Frames as a client rebuilds them (token frames as they are, parts joined)."""
    frames, parts = [], {}
    for message in messages:
        frame = json.loads(message)
        if frame["type"] != "part":
            frames.append(frame)
            continue
        parts.setdefault(frame["id"], {})[frame["index"]] = frame["data"]
        if len(parts[frame["id"]]) == frame["count"]:
            pieces = parts.pop(frame["id"])
            frames.append(json.loads("".join(pieces[i] for i in range(frame["count"]))))
    return frames


def test_a_small_frame_is_one_message():
    assert split_frame({"type": "status", "status": "processing"}) == [
        b'{"type":"status","status":"processing"}'
    ]


def test_a_long_token_becomes_several_tokens():
    content = "é" * 40_000 + '"\\\n' * 5_000 + "😀" * 10_000
    messages = split_frame({"type": "token", "content": content})
    assert len(messages) > 4
    assert all(len(m) < FRAME_LIMIT_BYTES for m in messages)
    frames = [json.loads(m) for m in messages]
    assert {f["type"] for f in frames} == {"token"}
    assert "".join(f["content"] for f in frames) == content


def test_any_other_long_frame_travels_in_parts():
    done = {"type": "done", "answer": "ok \u0001 ünïcode 😀 " * 9_000, "usage": {"tokens_in": 3}}
    messages = split_frame(done)
    assert len(messages) > 1 and all(len(m) < FRAME_LIMIT_BYTES for m in messages)
    first = json.loads(messages[0])
    assert (first["type"], first["of"], first["index"], first["count"]) == (
        "part",
        "done",
        0,
        len(messages),
    )
    assert reassemble(messages) == [done]


class Recorder:
    def __init__(self, *, gone_after: int | None = None, fail: set[int] = frozenset()) -> None:
        self.messages: list[bytes] = []
        self.gone_after = gone_after
        self.fail = fail
        self.calls = 0

    async def __call__(self, data: bytes) -> None:
        self.calls += 1
        if self.gone_after is not None and self.calls > self.gone_after:
            raise ConnectionGone("c1")
        if self.calls in self.fail:
            raise DeliveryFailed("throttled for good")
        self.messages.append(data)

    def frames(self) -> list[dict]:
        return reassemble(self.messages)


def token(text: str) -> RunEvent:
    return RunEvent("token", {"content": text})


async def test_tokens_are_batched_and_flushed_before_other_frames():
    post = Recorder()
    pusher = FramePusher(post, flush_seconds=10, flush_tokens=1000)
    await pusher.emit(RunEvent("status", {"status": "processing"}))
    for piece in ["The ", "answer ", "is ", "42."]:
        await pusher.emit(token(piece))
    await pusher.emit(RunEvent("done", {"answer": "The answer is 42."}))
    await pusher.close()

    assert post.frames() == [
        {"type": "status", "status": "processing"},
        {"type": "token", "content": "The answer is 42."},
        {"type": "done", "answer": "The answer is 42."},
    ]
    assert pusher.posted == 3


async def test_tokens_flush_on_count_and_on_time():
    post = Recorder()
    pusher = FramePusher(post, flush_seconds=0.05, flush_tokens=10)
    for number in range(25):
        await pusher.emit(token(str(number % 10)))
    assert [f["content"] for f in post.frames()] == ["0123456789", "0123456789"]
    await asyncio.sleep(0.15)  # the timer flushes the last five without another event
    assert [f["content"] for f in post.frames()][-1] == "01234"
    await pusher.close()
    assert pusher.posted == 3


async def test_a_gone_connection_stops_delivery_and_calls_back_once():
    post = Recorder(gone_after=1)
    gone_calls = []

    async def on_gone() -> None:
        gone_calls.append(1)

    pusher = FramePusher(post, flush_seconds=10, on_gone=on_gone)
    await pusher.emit(RunEvent("status", {"status": "processing"}))
    await pusher.emit(token("lost"))
    await pusher.emit(RunEvent("tool_call", {"name": "x"}))
    await pusher.emit(RunEvent("done", {"answer": "lost"}))
    await pusher.close()

    assert pusher.gone and gone_calls == [1]
    assert post.calls == 2 and len(post.messages) == 1


async def test_a_frame_that_cannot_be_delivered_is_skipped(caplog):
    post = Recorder(fail={1})
    pusher = FramePusher(post, flush_seconds=10)
    await pusher.emit(RunEvent("status", {"status": "processing"}))
    await pusher.emit(RunEvent("done", {"answer": ""}))
    assert [f["type"] for f in post.frames()] == ["done"]
    assert "not delivered" in caplog.text


@pytest.mark.parametrize("limit", [300, 1000])
def test_parts_respect_any_limit(limit):
    frame = {"type": "tool_result", "content": "x" * 5000}
    assert all(len(m) <= limit for m in split_frame(frame, limit))
    assert reassemble(split_frame(frame, limit)) == [frame]

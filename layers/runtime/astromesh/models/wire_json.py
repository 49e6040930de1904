"""Request bodies of the HTTP providers, encoded without re-encoding what was already sent.

A run sends its whole conversation at every model call: iteration ``n`` re-sends the turns
before it (and the session's history), each assistant turn with its tool calls' arguments
JSON-encoded again. :class:`WireCache` keeps the JSON of each message it encoded, by object,
so a call encodes only what is new and joins the rest. (Tool definitions are new objects at
every call, their schemas copied: they are encoded each time, a small part of the body.)
An object whose fields changed since (a redaction replacing a message's content) is encoded
again: the cache compares the fields that go on the wire by identity, which costs a fraction
of encoding them.

The body is the bytes ``httpx`` would have made of the same dict (compact separators,
``ensure_ascii=False``, no NaN): servers see the same request.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from astromesh.models.types import Message

CACHED_BYTES = 1024 * 1024
"""Encoded JSON remembered per provider, least recently sent dropped first: the conversations
of many concurrent runs, while the memory a provider holds stays bounded."""

CACHED_MESSAGES = 2048
"""Messages remembered per provider, whatever their size: an entry keeps its ``Message``
alive (a handful of objects the cyclic collector walks at every full collection), and short
messages would otherwise fill :data:`CACHED_BYTES` ten thousand at a time, most of them of
runs long finished. 2048 holds some fifty live conversations of forty messages."""

LARGEST_CACHED = 16 * 1024
"""A message encoding to more is not remembered: a large tool result expanded for the call is
a new copy every time, and encoding one long string is cheap next to sending it."""

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any) -> bytes:
    """``value`` as httpx encodes a ``json=`` body."""
    return _encode(value).encode("utf-8")


def _message_fields(message: Message) -> tuple[Any, ...]:
    """What a message's wire form depends on (``content_ref`` is never sent)."""
    return (
        message.role,
        message.content,
        message.name,
        message.tool_call_id,
        tuple(message.tool_calls),
    )


class WireCache:
    """The JSON of messages already encoded by one provider, least recently sent dropped.

    Entries hold their object, so its ``id`` cannot be reused by another while cached; at most
    :data:`CACHED_BYTES` of JSON and :data:`CACHED_MESSAGES` messages are kept.
    """

    def __init__(
        self,
        message: Callable[[Message], dict[str, Any]],
        capacity: int = CACHED_BYTES,
        entries: int = CACHED_MESSAGES,
    ) -> None:
        self._wire_message = message
        self._capacity = capacity
        self._max_entries = entries
        self._held = 0
        self._entries: OrderedDict[int, tuple[Message, tuple[Any, ...], bytes]] = OrderedDict()

    def messages(self, messages: Sequence[Message]) -> bytes:
        """``[...]``: the JSON array of ``messages`` in wire form."""
        entries = self._entries
        parts: list[bytes] = []
        for item in messages:
            key = id(item)
            now = _message_fields(item)
            entry = entries.get(key)
            # Tuples compare element by element, identity first: an unchanged message costs
            # one pass of pointer comparisons; a changed field (new text) is encoded again.
            if entry is not None and entry[0] is item and entry[1] == now:
                entries.move_to_end(key)
                parts.append(entry[2])
                continue
            encoded = dumps(self._wire_message(item))
            parts.append(encoded)
            if entry is not None:
                self._held -= len(entries.pop(key)[2])
            if len(encoded) <= LARGEST_CACHED:
                entries[key] = (item, now, encoded)
                self._held += len(encoded)
                while self._held > self._capacity or len(entries) > self._max_entries:
                    self._held -= len(entries.popitem(last=False)[1][2])
        return b"[" + b",".join(parts) + b"]"


def body(head: Mapping[str, Any], arrays: Mapping[str, bytes], tail: Mapping[str, Any]) -> bytes:
    """One JSON object: ``head``'s fields, then the pre-encoded ``arrays``, then ``tail``'s,
    in that order (the order of the dict a provider would have built)."""
    parts = [dumps(dict(head))[1:-1]] if head else []
    parts.extend(dumps(name) + b":" + value for name, value in arrays.items())
    if tail:
        parts.append(dumps(dict(tail))[1:-1])
    return b"{" + b",".join(part for part in parts if part) + b"}"

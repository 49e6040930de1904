"""The two ways a provider is asked for an answer, for tests that must hold for both.

:func:`streamed` is the path taken when someone reads tokens as they come
(:meth:`Model.stream`), :func:`whole` the one taken when nobody does (:meth:`Model.complete`,
a non-streamed request). Every answer and every error must be the same either way; the
``answer`` fixture of ``tests/models`` runs a test once with each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from astromesh.models import Message, Model, ModelResponse, TextDelta

Answer = Callable[..., Awaitable[ModelResponse]]


async def streamed(model: Model, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
    """The final response of :meth:`Model.stream`, checking the deltas before it."""
    events = [event async for event in model.stream(messages, **kwargs)]
    assert all(isinstance(event, TextDelta) for event in events[:-1])
    final = events[-1]
    assert isinstance(final, ModelResponse)
    assert "".join(event.text for event in events[:-1]) == final.content
    return final


async def whole(model: Model, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
    """:meth:`Model.complete`: the non-streamed request."""
    return await model.complete(messages, **kwargs)


ANSWERS: dict[str, Answer] = {"streamed": streamed, "whole": whole}

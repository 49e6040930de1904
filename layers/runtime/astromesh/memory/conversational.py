"""Conversational memory: which past turns of a session go back into the prompt.

The store keeps every message; a strategy decides what the model sees. Only the user's
query and the final answer are remembered, not intermediate tool chatter, so a window of
``max_turns`` means ``max_turns`` question/answer pairs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from astromesh.errors import ConfigurationError
from astromesh.models.types import Message
from astromesh.stores.base import HistoryStore, SessionKey

if TYPE_CHECKING:
    from astromesh.memory.summary import Summarizer, SummaryStore


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about four characters a token), good enough for budgeting."""
    return max(1, (len(text) + 3) // 4) if text else 0


class ConversationalMemory(ABC):
    """Reads a session's recent history and writes each finished turn back."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    @abstractmethod
    async def recall(self, key: SessionKey) -> list[Message]:
        """Messages to put before the new query, oldest first."""

    async def remember(self, key: SessionKey, query: str, answer: str) -> None:
        await self.store.append(key, [Message.user(query), Message.assistant(answer)])

    async def history(self, key: SessionKey, limit: int | None = None) -> list[Message]:
        return await self.store.read(key, limit)

    async def clear(self, key: SessionKey) -> int:
        return await self.store.clear(key)


class SlidingWindowMemory(ConversationalMemory):
    """The last ``max_turns`` question/answer pairs."""

    def __init__(self, store: HistoryStore, *, max_turns: int) -> None:
        super().__init__(store)
        self.max_turns = max_turns

    async def recall(self, key: SessionKey) -> list[Message]:
        return await self.store.read(key, self.max_turns * 2)


class TokenBudgetMemory(ConversationalMemory):
    """The newest pairs whose text fits ``max_tokens`` (never splitting a pair)."""

    def __init__(self, store: HistoryStore, *, max_turns: int, max_tokens: int) -> None:
        super().__init__(store)
        self.max_turns = max_turns
        self.max_tokens = max_tokens

    async def recall(self, key: SessionKey) -> list[Message]:
        recent = await self.store.read(key, self.max_turns * 2)
        kept: list[Message] = []
        used = 0
        for start in range(len(recent) - 2, -2, -2):
            pair = recent[max(start, 0) : start + 2]
            cost = sum(estimate_tokens(m.content) for m in pair)
            if used + cost > self.max_tokens:
                break
            kept[:0] = pair
            used += cost
        return kept


def build_memory(
    store: HistoryStore,
    *,
    strategy: str,
    max_turns: int,
    max_tokens: int | None,
    summarizer: Summarizer | None = None,
    summaries: SummaryStore | None = None,
) -> ConversationalMemory:
    """The memory for an agent's ``spec.memory.conversational`` settings.

    ``summary`` needs ``summarizer`` (the runtime builds one from the agent's model with
    :func:`astromesh.memory.summary.model_summarizer`) and ``summaries``, the store beside
    the history (:func:`astromesh.memory.summary.build_summary_store`; in-memory if omitted).
    """
    if strategy == "summary":
        from astromesh.memory.summary import InMemorySummaryStore, SummaryMemory

        if summarizer is None:
            raise ConfigurationError(
                "conversational memory strategy 'summary' needs a summariser (the agent's "
                "model): pass summarizer=model_summarizer(router) to build_memory"
            )
        return SummaryMemory(
            store,
            summaries=summaries or InMemorySummaryStore(),
            summarizer=summarizer,
            max_turns=max_turns,
        )
    if strategy == "sliding_window":
        return SlidingWindowMemory(store, max_turns=max_turns)
    if strategy == "token_budget":
        return TokenBudgetMemory(store, max_turns=max_turns, max_tokens=max_tokens or 2000)
    raise ConfigurationError(
        f"unknown conversational memory strategy {strategy!r} "
        "(runnable: sliding_window, summary, token_budget)"
    )

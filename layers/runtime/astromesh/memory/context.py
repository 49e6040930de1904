"""The context builder: system prompt + recalled memory + retrieved knowledge + history,
fitted to the model's context budget, with a report of what was left out.

What is never dropped: the system prompt and the query (without them there is no request).
What goes first when the budget is short, least useful first:

1. history turns, oldest first, down to the newest ``keep_turns`` pairs (a follow-up
   question needs the turn it follows; turns from long ago rarely matter);
2. retrieved knowledge and recalled memories, lowest similarity first, down to one of each
   (they were fetched for *this* query, so they outrank old turns);
3. the conversation summary;
4. whatever remained of those, in the same order.

The result says what it dropped, and :meth:`BuiltContext.as_step` gives the dictionary the
``prepare`` stage records as a step (``run.record("context", **built.as_step())``), so a
run's steps show why the model did not see something.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from astromesh.memory.conversational import estimate_tokens
from astromesh.models.types import Message, Role
from astromesh.rag.types import Hit

TokenCounter = Callable[[str], int]
Kind = Literal["history", "knowledge", "memory", "summary"]

MESSAGE_OVERHEAD = 4
"""Tokens a chat template adds around each message (role markers, separators)."""


@dataclass(slots=True)
class Dropped:
    """One thing left out of the prompt."""

    kind: Kind
    tokens: int
    detail: str
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "tokens": self.tokens, "detail": self.detail}
        if self.score is not None:
            data["score"] = round(self.score, 4)
        return data


@dataclass(slots=True)
class BuiltContext:
    """The messages to send and the accounting behind them."""

    messages: list[Message]
    tokens: int
    budget: int
    kept: dict[str, int]
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        """False when even the system prompt and the query exceed the budget."""
        return self.tokens <= self.budget

    def as_step(self) -> dict[str, Any]:
        """The data of the ``context`` step the prepare stage records."""
        return {
            "tokens": self.tokens,
            "budget": self.budget,
            "fits": self.fits,
            "kept": dict(self.kept),
            "dropped": [d.as_dict() for d in self.dropped],
        }


@dataclass(slots=True)
class _Item:
    kind: Kind
    text: str
    tokens: int
    score: float | None = None
    position: int = 0
    messages: list[Message] = field(default_factory=list)
    hit: Hit | None = None


class ContextBuilder:
    """Assembles one request's messages within ``context_window - reserve_output`` tokens.

    Args:
        context_window: the model's context length in tokens.
        reserve_output: tokens kept free for the answer.
        count_tokens: a token counter (defaults to the four-characters estimate; pass the
            model's tokenizer for exact figures).
        keep_turns: newest history pairs protected in the first dropping pass.
    """

    def __init__(
        self,
        *,
        context_window: int,
        reserve_output: int = 512,
        count_tokens: TokenCounter = estimate_tokens,
        keep_turns: int = 1,
    ) -> None:
        self.budget = max(context_window - reserve_output, 0)
        self.count = count_tokens
        self.keep_turns = keep_turns

    def _cost(self, text: str) -> int:
        return self.count(text) + MESSAGE_OVERHEAD

    def build(
        self,
        *,
        system: str,
        query: str,
        history: Sequence[Message] = (),
        memories: Sequence[Hit] = (),
        knowledge: Sequence[Hit] = (),
    ) -> BuiltContext:
        """The messages: one system message (prompt, summary, memories, knowledge), the
        history turns, then the query. A system message at the head of ``history`` (the
        summary strategy's summary) is treated as the summary."""
        summary: _Item | None = None
        turns = list(history)
        if turns and turns[0].role is Role.SYSTEM:
            head = turns.pop(0)
            summary = _Item("summary", head.content, self._cost(head.content), messages=[head])
        pairs = _pairs(turns)
        history_items = [
            _Item(
                "history",
                " / ".join(m.content[:40] for m in pair),
                sum(self._cost(m.content) for m in pair),
                position=i,
                messages=pair,
            )
            for i, pair in enumerate(pairs)
        ]
        memory_items = [
            _Item("memory", h.content, self._cost(h.content), h.score, i, hit=h)
            for i, h in enumerate(memories)
        ]
        knowledge_items = [
            _Item("knowledge", h.content, self._cost(_knowledge_line(0, h)), h.score, i, hit=h)
            for i, h in enumerate(knowledge)
        ]
        fixed = self._cost(system) + self._cost(query)
        kept = {
            id(item): item
            for item in [*history_items, *memory_items, *knowledge_items]
            + ([summary] if summary else [])
        }
        dropped: list[Dropped] = []

        def total() -> int:
            return fixed + sum(item.tokens for item in kept.values())

        for item in self._drop_order(history_items, memory_items, knowledge_items, summary):
            if total() <= self.budget:
                break
            del kept[id(item)]
            dropped.append(Dropped(item.kind, item.tokens, _describe(item), item.score))

        messages = self._assemble(system, query, kept, summary, history_items, memory_items,
                                  knowledge_items)  # fmt: skip
        counts = {
            "history_turns": sum(1 for i in history_items if id(i) in kept),
            "memories": sum(1 for i in memory_items if id(i) in kept),
            "knowledge": sum(1 for i in knowledge_items if id(i) in kept),
            "summary": int(summary is not None and id(summary) in kept),
        }
        return BuiltContext(messages, total(), self.budget, counts, dropped)

    def _drop_order(
        self,
        history: list[_Item],
        memories: list[_Item],
        knowledge: list[_Item],
        summary: _Item | None,
    ) -> list[_Item]:
        protected_turns = history[len(history) - self.keep_turns :] if self.keep_turns else []
        first = [h for h in history if h not in protected_turns]  # oldest first
        by_score = sorted(
            _all_but_best(memories) + _all_but_best(knowledge),
            key=lambda i: i.score if i.score is not None else 0.0,
        )
        rest = [*protected_turns, *_best(memories), *_best(knowledge)]
        return [*first, *by_score, *([summary] if summary else []), *rest]

    def _assemble(
        self,
        system: str,
        query: str,
        kept: dict[int, _Item],
        summary: _Item | None,
        history: list[_Item],
        memories: list[_Item],
        knowledge: list[_Item],
    ) -> list[Message]:
        parts = [system] if system else []
        if summary is not None and id(summary) in kept:
            parts.append(summary.text)
        kept_memories = [i for i in memories if id(i) in kept]
        if kept_memories:
            parts.append("Relevant memories:\n" + "\n".join(f"- {i.text}" for i in kept_memories))
        kept_knowledge = [i for i in knowledge if id(i) in kept]
        if kept_knowledge:
            parts.append(
                "Retrieved knowledge (cite the numbers):\n"
                + "\n\n".join(
                    _knowledge_line(n, i.hit) for n, i in enumerate(kept_knowledge, 1) if i.hit
                )
            )
        messages = [Message.system("\n\n".join(parts))] if parts else []
        for item in history:
            if id(item) in kept:
                messages.extend(item.messages)
        messages.append(Message.user(query))
        return messages


def _pairs(messages: Sequence[Message]) -> list[list[Message]]:
    """History grouped into turns: each user message with what follows it."""
    pairs: list[list[Message]] = []
    for message in messages:
        if message.role is Role.USER or not pairs:
            pairs.append([message])
        else:
            pairs[-1].append(message)
    return pairs


def _best(items: list[_Item]) -> list[_Item]:
    return sorted(items, key=lambda i: -(i.score or 0.0))[:1]


def _all_but_best(items: list[_Item]) -> list[_Item]:
    best = _best(items)
    return [i for i in items if i not in best]


def _knowledge_line(number: int, hit: Hit | None) -> str:
    if hit is None:
        return ""
    source = str(hit.metadata.get("source") or hit.id)
    return f"[{number}] ({source}) {hit.content}"


def _describe(item: _Item) -> str:
    if item.kind == "history":
        return f"turn {item.position + 1}: {item.text[:80]}"
    if item.hit is not None:
        source = item.hit.metadata.get("source") or item.hit.id
        return f"{source}: {item.text[:80]}"
    return item.text[:80]

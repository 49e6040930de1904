"""The ``summary`` conversational strategy: older turns folded into a running summary.

The model sees a system message with the summary of everything before the window, then the
last ``max_turns`` question/answer pairs verbatim. When a finished turn pushes a pair out of
the window, :meth:`SummaryMemory.remember` asks the *summariser* to fold it into the summary.

The summariser is a callable the runtime passes in (normally the agent's own model, see
:func:`model_summarizer`), so this module needs no model plumbing and tests can script it.
Folding happens after the answer is written, never in ``prepare``, so a user never waits
for it; if it fails the turn is kept and folding is retried at the next turn.

The summary is kept beside the history, keyed by the same :class:`SessionKey`, with the
number of history messages it covers; clearing the history clears it too.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astromesh.errors import AstromeshError, ConfigurationError
from astromesh.memory.conversational import ConversationalMemory
from astromesh.models.types import Message, ModelResponse
from astromesh.runs.state import utcnow
from astromesh.runs.usage import count
from astromesh.stores._common import sortable_timestamp
from astromesh.stores.base import HistoryStore, SessionKey

if TYPE_CHECKING:
    from astromesh.stores.base import StateBackend

logger = logging.getLogger(__name__)

Summarizer = Callable[[str | None, Sequence[Message]], Awaitable[str]]
"""``(previous summary or None, messages to fold) -> new summary``."""

SUMMARY_HEADER = "Summary of the earlier conversation:\n"


@dataclass(frozen=True, slots=True)
class SummaryState:
    """The running summary and how many history messages (from the start) it covers."""

    summary: str
    covered: int


class SummaryStore(ABC):
    """Summaries by session key."""

    @abstractmethod
    async def get(self, key: SessionKey) -> SummaryState | None: ...

    @abstractmethod
    async def put(self, key: SessionKey, state: SummaryState) -> None: ...

    @abstractmethod
    async def clear(self, key: SessionKey) -> None: ...


class InMemorySummaryStore(SummaryStore):
    def __init__(self) -> None:
        self._states: dict[str, SummaryState] = {}

    async def get(self, key: SessionKey) -> SummaryState | None:
        return self._states.get(key.as_string())

    async def put(self, key: SessionKey, state: SummaryState) -> None:
        self._states[key.as_string()] = state

    async def clear(self, key: SessionKey) -> None:
        self._states.pop(key.as_string(), None)


class SQLiteSummaryStore(SummaryStore):
    """Table ``conversation_summaries`` in the state database."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    async def _call(self, fn: Any) -> Any:
        # The table comes from the state migrations (0004_memory), applied on connect.
        return await self._backend.call(fn)

    async def get(self, key: SessionKey) -> SummaryState | None:
        row = await self._call(
            lambda conn: conn.execute(
                "SELECT summary, covered FROM conversation_summaries WHERE session_key = ?",
                (key.as_string(),),
            ).fetchone()
        )
        return None if row is None else SummaryState(row[0], int(row[1]))

    async def put(self, key: SessionKey, state: SummaryState) -> None:
        await self._call(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO conversation_summaries"
                " (session_key, summary, covered, updated_at) VALUES (?, ?, ?, ?)",
                (key.as_string(), state.summary, state.covered, sortable_timestamp(utcnow())),
            )
        )

    async def clear(self, key: SessionKey) -> None:
        await self._call(
            lambda conn: conn.execute(
                "DELETE FROM conversation_summaries WHERE session_key = ?", (key.as_string(),)
            )
        )


class PostgresSummaryStore(SummaryStore):
    """Table ``conversation_summaries`` in the state database."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    async def get(self, key: SessionKey) -> SummaryState | None:
        rows = await self._backend.execute(
            "SELECT summary, covered FROM conversation_summaries WHERE session_key = %s",
            (key.as_string(),),
        )
        return SummaryState(rows[0][0], int(rows[0][1])) if rows else None

    async def put(self, key: SessionKey, state: SummaryState) -> None:
        await self._backend.execute(
            "INSERT INTO conversation_summaries (session_key, summary, covered, updated_at)"
            " VALUES (%s, %s, %s, now()) ON CONFLICT (session_key) DO UPDATE SET"
            " summary = excluded.summary, covered = excluded.covered, updated_at = now()",
            (key.as_string(), state.summary, state.covered),
        )

    async def clear(self, key: SessionKey) -> None:
        await self._backend.execute(
            "DELETE FROM conversation_summaries WHERE session_key = %s", (key.as_string(),)
        )


class RedisSummaryStore(SummaryStore):
    """One key per session beside the history list, with the same TTL."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def _key(self, key: SessionKey) -> str:
        return str(self._backend.key("summary", key.as_string()))

    async def get(self, key: SessionKey) -> SummaryState | None:
        raw = await self._backend.client.get(self._key(key))
        if raw is None:
            return None
        data = json.loads(raw)
        return SummaryState(data["summary"], int(data["covered"]))

    async def put(self, key: SessionKey, state: SummaryState) -> None:
        value = json.dumps({"summary": state.summary, "covered": state.covered})
        await self._backend.client.set(self._key(key), value, ex=self._backend.ttl_seconds or None)

    async def clear(self, key: SessionKey) -> None:
        await self._backend.client.delete(self._key(key))


def build_summary_store(backend: StateBackend) -> SummaryStore:
    """The summary store beside ``backend``'s history (same database, same key scheme)."""
    kind = type(backend).__name__
    if kind == "SQLiteBackend":
        return SQLiteSummaryStore(backend)
    if kind == "PostgresBackend":
        return PostgresSummaryStore(backend)
    if kind == "RedisBackend":
        return RedisSummaryStore(backend)
    return InMemorySummaryStore()


class SummaryMemory(ConversationalMemory):
    """A running summary of older turns plus the last ``max_turns`` pairs verbatim.

    Args:
        summaries: where the summary lives (beside the history).
        summarizer: folds messages into the summary (the agent's model, usually).
        max_turns: question/answer pairs kept verbatim.
    """

    def __init__(
        self,
        store: HistoryStore,
        *,
        summaries: SummaryStore,
        summarizer: Summarizer,
        max_turns: int,
    ) -> None:
        super().__init__(store)
        self.summaries = summaries
        self.summarizer = summarizer
        self.max_turns = max_turns

    async def _state(self, key: SessionKey, total: int) -> SummaryState | None:
        state = await self.summaries.get(key)
        if state is not None and state.covered > total:
            # The history was cleared or expired under the summary: it describes nothing.
            await self.summaries.clear(key)
            return None
        return state

    async def recall(self, key: SessionKey) -> list[Message]:
        messages = await self.store.read(key)
        state = await self._state(key, len(messages))
        window = messages[-self.max_turns * 2 :] if self.max_turns else []
        if state is None or not state.summary:
            return window
        return [Message.system(SUMMARY_HEADER + state.summary), *window]

    async def summary(self, key: SessionKey) -> str | None:
        """The current summary of the session, if any turn was folded yet."""
        state = await self.summaries.get(key)
        return state.summary if state else None

    async def remember(self, key: SessionKey, query: str, answer: str) -> None:
        await super().remember(key, query, answer)
        await self.fold(key)

    async def fold(self, key: SessionKey) -> bool:
        """Fold every message older than the window into the summary; whether it did.

        A failing summariser is logged and skipped: the turn is already stored, and the
        messages are folded at the next successful attempt.
        """
        messages = await self.store.read(key)
        state = await self._state(key, len(messages))
        covered = state.covered if state else 0
        window_start = max(len(messages) - self.max_turns * 2, 0)
        if window_start <= covered:
            return False
        try:
            summary = await self.summarizer(
                state.summary if state else None, messages[covered:window_start]
            )
        except AstromeshError as exc:
            logger.warning("session=<%s> | summary not updated: %s", key.as_string(), exc)
            return False
        await self.summaries.put(key, SummaryState(summary.strip(), window_start))
        return True

    async def clear(self, key: SessionKey) -> int:
        await self.summaries.clear(key)
        return await super().clear(key)


SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Merge the new messages into the existing summary. Keep facts, names, numbers, decisions "
    "and open questions; drop pleasantries. Write at most {max_words} words, in the third "
    "person, and answer with the summary only."
)


def model_summarizer(model: Any, *, max_words: int = 150) -> Summarizer:
    """A summariser that asks ``model`` (a ``Model`` or a ``ModelRouter``) to fold turns.

    Each call is counted into the run whose end caused it (role ``summary``).

    Raises (when called):
        ProviderError: the model failed (``SummaryMemory.fold`` logs it and retries later).
    """

    async def summarize(previous: str | None, messages: Sequence[Message]) -> str:
        transcript = "\n".join(f"{m.role.value}: {m.content}" for m in messages if m.content)
        prompt = [
            Message.system(SUMMARY_INSTRUCTIONS.format(max_words=max_words)),
            Message.user(
                f"Existing summary:\n{previous or '(none yet)'}\n\nNew messages:\n{transcript}"
            ),
        ]
        if hasattr(model, "complete"):
            response: ModelResponse = await model.complete(prompt)
            count(response)  # into the run that is ending (astromesh.runs.usage)
            return response.content
        final: ModelResponse | None = None
        async for event in model.stream(prompt):
            if isinstance(event, ModelResponse):
                final = event
        if final is None:
            raise ConfigurationError("the summariser's model returned no response")
        count(final)
        return final.content

    return summarize

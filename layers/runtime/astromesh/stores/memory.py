"""In-memory stores: for tests and throwaway runs. Same semantics as the durable ones."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from astromesh.errors import ConflictError, NotFoundError
from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState, utcnow
from astromesh.stores._journal import Encoded, decode, encode, parse_messages, remember
from astromesh.stores.base import HistoryStore, RunStore, SessionKey, StateBackend, UsageStore
from astromesh.telemetry.usage import UsageEntry, UsageQuery, entries_of


class MemoryUsageStore(UsageStore):
    def __init__(self) -> None:
        self._by_run: dict[str, list[UsageEntry]] = {}

    def put(self, run: RunState) -> None:
        """Replace ``run``'s entries when it is stored ended (see :class:`UsageStore`)."""
        if run.status.is_terminal:
            self._by_run[run.id] = entries_of(run)

    async def entries(self, query: UsageQuery) -> list[UsageEntry]:
        return [e for found in self._by_run.values() for e in found if query.matches(e)]


class MemoryRunStore(RunStore):
    """Runs kept as the durable stores keep them: a head and rows of each growing list
    (:mod:`astromesh.stores._journal`), as JSON text, so a caller never shares objects with
    the store and the tests on this store exercise the same append-or-rewrite decisions."""

    def __init__(self, usage: MemoryUsageStore | None = None) -> None:
        self.usage = usage or MemoryUsageStore()
        self._runs: dict[str, str] = {}
        self._items: dict[str, dict[str, list[str]]] = {}
        self._versions: dict[str, int] = {}  # compare-and-swap without parsing the document
        self._results: dict[tuple[str, str], str] = {}
        self._lock = asyncio.Lock()

    def _write(self, run_id: str, encoded: Encoded) -> None:
        self._runs[run_id] = encoded.head
        items = self._items.setdefault(run_id, {})
        for write in encoded.lists:
            if write.rewrite:
                items[write.name] = []
            items.setdefault(write.name, []).extend(write.bodies)

    def _read(self, run_id: str, *, remembered: bool) -> RunState:
        rows = [(name, body) for name, bodies in self._items[run_id].items() for body in bodies]
        return decode(self._runs[run_id], rows, store=self if remembered else None)

    async def put_result(self, run_id: str, result: ActionResult) -> None:
        self._results[(run_id, result.call_id)] = result.model_dump_json()

    async def get_results(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        return {
            call_id: ActionResult.model_validate_json(raw)
            for call_id in call_ids
            if (raw := self._results.get((run_id, call_id))) is not None
        }

    async def create(self, run: RunState) -> RunState:
        async with self._lock:
            if run.id in self._runs:
                raise ConflictError(f"run {run.id!r} already exists")
            run.version = 1
            run.updated_at = utcnow()
            encoded = encode(run, self, replacing=None)
            self._write(run.id, encoded)
            self._versions[run.id] = 1
            self.usage.put(run)
            remember(run, encoded.snapshot)
            return run

    async def get(self, run_id: str) -> RunState:
        if run_id not in self._runs:
            raise NotFoundError(f"run {run_id!r} not found")
        return self._read(run_id, remembered=True)

    async def save(self, run: RunState) -> RunState:
        async with self._lock:
            stored = self._versions.get(run.id)
            if stored is None:
                raise NotFoundError(f"run {run.id!r} not found")
            if stored != run.version:
                raise ConflictError(
                    f"run {run.id!r} was modified concurrently "
                    f"(stored version {stored}, writer had {run.version})"
                )
            replacing = run.version
            run.version += 1
            run.updated_at = utcnow()
            encoded = encode(run, self, replacing=replacing)
            self._write(run.id, encoded)
            self._versions[run.id] = run.version
            self.usage.put(run)
            remember(run, encoded.snapshot)
            return run

    async def list_runs(
        self, *, agent: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[RunState]:
        runs = [self._read(run_id, remembered=False) for run_id in self._runs]
        runs = [
            r
            for r in runs
            if (agent is None or r.agent == agent)
            and (session_id is None or r.session_id == session_id)
        ]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]


class MemoryHistoryStore(HistoryStore):
    """Messages kept as JSON text, as the durable stores keep them: a caller never shares an
    object with the store, and a read parses the window instead of deep-copying each message
    (a deep copy of a pydantic model walks it in Python, several times the parse)."""

    def __init__(self) -> None:
        self._sessions: dict[SessionKey, list[str]] = defaultdict(list)

    async def append(self, key: SessionKey, messages: list[Message]) -> None:
        self._sessions[key].extend(m.model_dump_json() for m in messages)

    async def read(self, key: SessionKey, limit: int | None = None) -> list[Message]:
        history = self._sessions.get(key, [])
        selected = history if limit is None else history[-limit:] if limit > 0 else []
        return parse_messages(selected)

    async def clear(self, key: SessionKey) -> int:
        return len(self._sessions.pop(key, []))


class MemoryBackend(StateBackend):
    def __init__(self) -> None:
        self.usage = MemoryUsageStore()
        self.runs = MemoryRunStore(self.usage)
        self.history = MemoryHistoryStore()

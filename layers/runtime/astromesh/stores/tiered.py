"""Hot and durable tiers: runs live in Redis while they execute and every finished run is
written to PostgreSQL too.

Redis keeps run documents for ``ttl_seconds``; a run read after it expired there is served
from PostgreSQL. Only terminal states are copied (a run is written to the durable tier once
or twice, not at every step), so the per-step cost stays one Redis round trip. History stays
in the hot tier (the conversation window, with its TTL).
"""

from __future__ import annotations

from collections.abc import Sequence

from astromesh.errors import ConflictError, NotFoundError
from astromesh.runs.state import ActionResult, RunState
from astromesh.stores.base import RunStore, StateBackend


class TieredRunStore(RunStore):
    """Reads and writes ``hot``; copies terminal runs to ``durable``."""

    def __init__(self, hot: RunStore, durable: RunStore) -> None:
        self.hot = hot
        self.durable = durable

    async def create(self, run: RunState) -> RunState:
        return await self.hot.create(run)

    async def get(self, run_id: str) -> RunState:
        try:
            return await self.hot.get(run_id)
        except NotFoundError:
            return await self.durable.get(run_id)

    async def save(self, run: RunState) -> RunState:
        saved = await self.hot.save(run)
        if saved.status.is_terminal:
            await self._keep(saved)
        return saved

    async def _keep(self, run: RunState) -> None:
        """Write the durable copy (its own version sequence: this tier has one writer)."""
        copy = run.model_copy(deep=True)
        try:
            await self.durable.create(copy)
        except ConflictError:
            stored = await self.durable.get(run.id)
            copy.version = stored.version
            await self.durable.save(copy)

    async def list_runs(
        self, *, agent: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[RunState]:
        found = {
            run.id: run
            for run in await self.durable.list_runs(agent=agent, session_id=session_id, limit=limit)
        }
        for run in await self.hot.list_runs(agent=agent, session_id=session_id, limit=limit):
            found[run.id] = run  # the hot copy is the newer one
        return sorted(found.values(), key=lambda r: r.created_at, reverse=True)[:limit]

    async def put_result(self, run_id: str, result: ActionResult) -> None:
        await self.hot.put_result(run_id, result)

    async def get_results(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        return await self.hot.get_results(run_id, call_ids)


class TieredBackend(StateBackend):
    """Redis (hot) with PostgreSQL (durable) behind its runs."""

    def __init__(self, hot: StateBackend, durable: StateBackend) -> None:
        self.hot_backend = hot
        self.durable_backend = durable
        self.runs = TieredRunStore(hot.runs, durable.runs)
        self.history = hot.history

    @property
    def dsn(self) -> str | None:
        """The durable tier's DSN (what pgvector stores share)."""
        return getattr(self.durable_backend, "dsn", None)

    async def open(self) -> None:
        await self.hot_backend.open()
        await self.durable_backend.open()

    async def close(self) -> None:
        await self.hot_backend.close()
        await self.durable_backend.close()

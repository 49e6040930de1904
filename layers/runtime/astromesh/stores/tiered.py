"""Hot and durable tiers: runs live in Redis while they execute and every finished run is
written to PostgreSQL too.

Redis keeps run documents for ``ttl_seconds``; a run read after it expired there is served
from PostgreSQL. Only terminal states are copied (a run is written to the durable tier once
or twice, not at every step), so the per-step cost stays one Redis round trip. History stays
in the hot tier (the conversation window, with its TTL). The usage ledger is the durable
tier's: a run's usage is written with its durable copy (so a copy owed while PostgreSQL was
down brings its usage with it), and the hot tier writes none.

When the durable tier fails (PostgreSQL restarting, failing over), a finished run is not
lost either: its final state is in Redis, the run id is remembered there as owed, and the copy
is written by a later save once PostgreSQL answers again (each finished run settles up to
:data:`SETTLE_BATCH` owed copies). The caller is answered normally meanwhile.

When the hot tier fails, a run is still not lost: a terminal state that Redis cannot take
(down, or restarted empty so the run is unknown there) is written to PostgreSQL alone, and a
running run that a restarted-empty Redis no longer knows is put back there. Reads prefer the
durable copy of a run whose hot copy looks stale (still running, not written for
:data:`STALE_AFTER_SECONDS`): that is the copy the hot tier missed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from astromesh.errors import ConflictError, NotFoundError, StateUnavailable
from astromesh.runs.state import ActionResult, RunState, utcnow
from astromesh.stores._common import adopt, as_utc, saved_copy
from astromesh.stores.base import PendingCheckpoint, RunStore, StateBackend

logger = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 10.0
"""A running run whose hot copy was not written for this long is also looked up in the
durable tier on reads. Any value is correct (the durable tier only ever holds a run's final
state); it only bounds how often a read of a running run costs a PostgreSQL query."""

SETTLE_BATCH = 10
"""Owed durable copies written after each finished run's own copy (bounds that save's cost)."""


@runtime_checkable
class DurableDebts(Protocol):
    """Where a hot tier remembers the runs whose durable copy is still to be written."""

    async def owe_durable(self, run_id: str) -> None: ...

    async def take_owed_durable(self, count: int) -> list[str]: ...


class _InProcessDebts:
    """Debts of a hot tier that cannot keep them (memory, tests): this process's own."""

    def __init__(self) -> None:
        self._owed: set[str] = set()

    async def owe_durable(self, run_id: str) -> None:
        self._owed.add(run_id)

    async def take_owed_durable(self, count: int) -> list[str]:
        return [self._owed.pop() for _ in range(min(count, len(self._owed)))]


class TieredRunStore(RunStore):
    """Reads and writes ``hot``; copies terminal runs to ``durable``."""

    def __init__(self, hot: RunStore, durable: RunStore) -> None:
        self.hot = hot
        self.durable = durable
        self.debts: DurableDebts = hot if isinstance(hot, DurableDebts) else _InProcessDebts()

    async def create(self, run: RunState) -> RunState:
        return await self.hot.create(run)

    async def get(self, run_id: str) -> RunState:
        try:
            run = await self.hot.get(run_id)
        except NotFoundError:
            return await self.durable.get(run_id)
        except StateUnavailable as down:
            try:
                return await self.durable.get(run_id)  # ended runs are readable meanwhile
            except NotFoundError:
                raise down from None  # a running run may exist: not a 404
        if run.status.is_terminal or not _stale(run):
            return run
        try:
            return await self.durable.get(run_id)  # finished while the hot tier missed it
        except NotFoundError:
            return run

    async def save(self, run: RunState) -> RunState:
        try:
            saved = await self.hot.save(run)
        except (StateUnavailable, NotFoundError) as exc:
            if run.status.is_terminal:
                # The final state is what must survive: PostgreSQL alone takes it.
                logger.warning(
                    "run_id=<%s>, status=<%s> | hot tier did not take the final state (%s);"
                    " writing it durably only",
                    run.id,
                    run.status.value,
                    exc.message,
                )
                written = saved_copy(run)
                await self._keep(written)
                return adopt(run, written)
            if isinstance(exc, StateUnavailable):
                raise
            # Redis restarted empty under a running run: put the run back and go on.
            logger.warning("run_id=<%s> | hot tier lost a running run; restoring it", run.id)
            return await self.hot.create(run)  # the caller's run is now at version 1
        if saved.status.is_terminal:
            try:
                await self._keep(saved)
            except StateUnavailable as exc:
                logger.warning(
                    "run_id=<%s> | durable tier unavailable (%s); its copy is owed",
                    saved.id,
                    exc.message,
                )
                await self.debts.owe_durable(saved.id)
            else:
                await self._settle()
        return saved

    async def checkpoint(self, run: RunState, results: Sequence[ActionResult] = ()) -> RunState:
        if run.status.is_terminal:  # the results, then save: the final state's durable copy
            return await super().checkpoint(run, results)
        return await (await self.begin_checkpoint(run, results)).wait()

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        """A running run's checkpoint is the hot tier's own: its results and the run in one
        round trip, written behind the loop's next model call when the hot tier can. At the
        wait, a hot tier that restarted empty under the run gets it back, as :meth:`save`
        does; an ended run goes through :meth:`save` (its durable copy)."""
        if run.status.is_terminal:
            return await super().begin_checkpoint(run, results)
        pending = await self.hot.begin_checkpoint(run, results)
        return PendingCheckpoint(run, self._restored_if_lost(run, pending))

    async def _restored_if_lost(self, run: RunState, pending: PendingCheckpoint) -> None:
        try:
            await pending.wait()
        except NotFoundError:
            # Redis restarted empty under a running run: put the run back as it is now (the
            # step written behind included) and go on, at version 1.
            logger.warning("run_id=<%s> | hot tier lost a running run; restoring it", run.id)
            await self.hot.create(run)

    async def _settle(self) -> None:
        """Write owed durable copies (the durable tier just took one, so it is back)."""
        owed = await self.debts.take_owed_durable(SETTLE_BATCH)
        for index, run_id in enumerate(owed):
            try:
                run = await self.hot.get(run_id)
            except NotFoundError:
                logger.error("run_id=<%s> | owed durable copy lost: gone from the hot tier", run_id)
                continue
            try:
                await self._keep(run)
            except StateUnavailable:
                for still in owed[index:]:
                    await self.debts.owe_durable(still)
                return

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
            if run.id not in found or run.status.is_terminal:
                found[run.id] = run  # the hot copy is the newer one, unless it missed the end
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
        self.usage = durable.usage
        if hasattr(hot, "records_usage"):
            hot.records_usage = False

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


def _stale(run: RunState) -> bool:
    return (utcnow() - as_utc(run.updated_at)).total_seconds() > STALE_AFTER_SECONDS

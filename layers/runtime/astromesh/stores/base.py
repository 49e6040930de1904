"""Store interfaces: what the runtime needs from state, whatever holds it.

Backends (SQLite embedded, Redis hot, PostgreSQL durable, in-memory for tests) each fill in
these few methods; the flows that use them (memory window, step loop) are written once
elsewhere. Every method is async so network backends never block the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from astromesh.models.types import Message
from astromesh.runs.state import ActionResult, RunState
from astromesh.telemetry.usage import Grouping, UsageEntry, UsageGroup, UsageQuery, summarise


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Identifies one conversation. Every part is part of the key, so one tenant's or agent's
    session can never read another's history even when session ids collide."""

    agent: str
    session_id: str
    namespace: str = "default"
    tenant: str = "default"

    def as_string(self) -> str:
        """A collision-free string form for SQL columns and Redis key names.

        Escaping ``%`` and ``:`` inside each part keeps the readable
        ``tenant:namespace:agent:session`` shape for ordinary names, while ``tenant="a:b",
        namespace="c"`` and ``tenant="a", namespace="b:c"`` still map to different strings.
        """
        parts = (self.tenant, self.namespace, self.agent, self.session_id)
        return ":".join(p.replace("%", "%25").replace(":", "%3A") for p in parts)


class PendingCheckpoint:
    """A checkpoint encoded from the run as it was when it began, and being written.

    Split from :meth:`RunStore.checkpoint` so the step loop can make its next model call
    while the commit runs (write-behind, see :class:`~astromesh.executors.local.LocalExecutor`):
    the store encodes the run when the checkpoint begins, so what is written is that state
    whatever the loop changes meanwhile, and the caller's run adopts the new version (and the
    store's journal records what it holds) only in :meth:`wait`, once the write committed.
    """

    __slots__ = ("_error", "_on_written", "_run", "_write")

    def __init__(
        self,
        run: RunState,
        write: Awaitable[object] | None = None,
        on_written: Callable[[], object] | None = None,
        *,
        error: Exception | None = None,
    ) -> None:
        self._run = run
        self._write = write
        self._on_written = on_written
        self._error = error

    async def wait(self) -> RunState:
        """The caller's run once the write committed (its version adopted).

        Raises what :meth:`RunStore.checkpoint` raises (``ConflictError``, ``NotFoundError``,
        ``StateUnavailable``...), and raises it again if called again.
        """
        if self._write is not None:
            write, self._write = self._write, None
            try:
                await write
            except Exception as exc:
                self._error = exc
                raise
            except BaseException:  # the waiter was cancelled: the write may or may not commit
                self._error = RuntimeError(
                    f"the checkpoint of run {self._run.id!r} was interrupted: outcome unknown"
                )
                raise
            if self._on_written is not None:
                self._on_written()
        if self._error is not None:
            raise self._error
        return self._run


class RunStore(ABC):
    """Run documents by id, with optimistic concurrency on ``RunState.version``."""

    @abstractmethod
    async def create(self, run: RunState) -> RunState:
        """Store a new run at version 1 and return it.

        Raises:
            ConflictError: a run with this id already exists.
        """

    @abstractmethod
    async def get(self, run_id: str) -> RunState:
        """Load a run.

        Raises:
            NotFoundError: no run has this id.
        """

    @abstractmethod
    async def save(self, run: RunState) -> RunState:
        """Write ``run`` if the stored version equals ``run.version``; return it with the
        version incremented (the caller's object is updated too).

        Raises:
            ConflictError: the stored version differs (another writer won).
            NotFoundError: the run was never created.
        """

    async def checkpoint(self, run: RunState, results: Sequence[ActionResult] = ()) -> RunState:
        """:meth:`save` ``run`` together with the full results of the step that produced it.

        The step loop's one write per iteration: the durable backends override this to write
        the results and the run in one round trip and one transaction (a conflict leaves
        neither written). This default writes the results first, so a run document never
        refers to a result that is not stored.
        """
        for result in results:
            await self.put_result(run.id, result)
        return await self.save(run)

    async def begin_checkpoint(
        self, run: RunState, results: Sequence[ActionResult] = ()
    ) -> PendingCheckpoint:
        """Start :meth:`checkpoint`; the caller may change ``run`` as soon as this returns,
        and calls :meth:`PendingCheckpoint.wait` (which raises what ``checkpoint`` raises)
        before anything that needs the write done.

        This default writes the whole checkpoint before returning (nothing overlaps; its
        failure is kept for ``wait``), which is correct for any store. The SQL stores and
        Redis override it to encode ``run`` here, before returning, and commit meanwhile.
        """
        try:
            await self.checkpoint(run, results)
        except Exception as exc:  # noqa: BLE001 - raised by wait(), as every store's are
            return PendingCheckpoint(run, error=exc)
        return PendingCheckpoint(run)

    @abstractmethod
    async def list_runs(
        self, *, agent: str | None = None, session_id: str | None = None, limit: int = 50
    ) -> list[RunState]:
        """Newest first, optionally filtered by agent and session."""

    @abstractmethod
    async def put_result(self, run_id: str, result: ActionResult) -> None:
        """Keep one action's full result beside the run.

        Written by whoever executed the action (the local loop, or a ``tool_executor`` Lambda
        running in parallel with its siblings), so it never touches the run document and
        never conflicts. Writing the same ``(run_id, call_id)`` again replaces it (retries).
        """

    @abstractmethod
    async def get_results(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ActionResult]:
        """The stored results among ``call_ids`` (missing ids are simply absent)."""


class HistoryStore(ABC):
    """Conversation messages per :class:`SessionKey`, oldest first."""

    @abstractmethod
    async def append(self, key: SessionKey, messages: list[Message]) -> None:
        """Add messages to the end of the session's history."""

    @abstractmethod
    async def read(self, key: SessionKey, limit: int | None = None) -> list[Message]:
        """The last ``limit`` messages (all when ``None``), in chronological order."""

    @abstractmethod
    async def clear(self, key: SessionKey) -> int:
        """Delete the session's history; return how many messages were removed."""


class UsageStore(ABC):
    """The usage ledger's entries (:mod:`astromesh.telemetry.usage`).

    Written by the backend's own :class:`RunStore` whenever it stores a run in a terminal
    state (in the same transaction where the backend has them), replacing that run's earlier
    entries; read here.
    """

    @abstractmethod
    async def entries(self, query: UsageQuery) -> list[UsageEntry]:
        """The entries of ``query.tenant``'s runs started in ``[since, until)`` (of
        ``query.agent`` only, when given; of ``query.agents`` only, when given)."""

    async def summary(
        self, query: UsageQuery, group_by: Grouping | None
    ) -> tuple[UsageGroup, list[UsageGroup]]:
        """The total of :meth:`entries` and, with ``group_by``, one sum per group (sorted by
        key): summed here in Python; the SQL stores sum in the database instead, so a long
        window costs one row per group rather than one per line."""
        return summarise(await self.entries(query), group_by)


class StateBackend(ABC):
    """One backend's stores, opened and closed together."""

    runs: RunStore
    history: HistoryStore
    usage: UsageStore

    async def open(self) -> None:  # noqa: B027 - optional hook, in-memory backends hold nothing
        """Connect and migrate now rather than on first use (fail fast at start-up)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, in-memory backends hold nothing
        """Release connections and files."""

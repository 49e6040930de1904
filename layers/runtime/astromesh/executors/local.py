"""LocalExecutor: the step loop in-process (CLI, local server, tests).

The run is saved after prepare, after every observe and at the end, each time as one write
that also carries the full results of the step's tool calls (``RunStore.checkpoint``), with
the store's optimistic concurrency: if someone else wrote the run meanwhile (a cancel
request), the save fails, the executor reloads, and a cancelled run stops.

The saves after prepare and observe are written behind: the store encodes the run at once
(``RunStore.begin_checkpoint``) and commits while the loop checks its limits and makes the
next model call, and the loop waits for the commit right after that call, before anything
else: before the step's tools run (a crash never loses a checkpoint whose successors' tool
calls already happened), before a pause for the client, before finalize and the final save,
and before the loop returns or raises. One write is in flight per run at most.

Two consequences. A cancel is found one model call later than if every save were waited
for: the conflict surfaces when the loop waits, after that call, and the run stops as
cancelled before the call's tools run, with the call recorded in its final save. And a
failed write (the store unavailable) surfaces there too, ending the run exactly as it would
have at the save itself; if the step failed as well, the write's failure wins, since it
happened first.
"""

from __future__ import annotations

import asyncio
import logging

from astromesh import pipeline
from astromesh.agent import Agent
from astromesh.errors import AstromeshError, ConflictError, StateUnavailable
from astromesh.executors.base import Executor
from astromesh.executors.results import RunResults
from astromesh.orchestration.base import Act, Decision, Fail
from astromesh.runs.events import EventSink
from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.base import RunStore
from astromesh.telemetry.scope import keep_spans, run_scope

logger = logging.getLogger(__name__)

FINAL_SAVE_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
"""Waits between attempts of a run's final write while the store is unavailable (about 8 s
in all): a restarting Redis or a failing-over PostgreSQL is usually back by then, and the
run is recorded instead of lost. Longer would hold the caller's request open too long."""


class RunCancelled(Exception):
    """Raised inside the loop when the stored run was cancelled by someone else."""


class LocalExecutor(Executor):
    """Runs the loop in-process.

    Args:
        runs: where the run is checkpointed.
        run_child: how agent tools start child runs (the runtime's
            :meth:`~astromesh.runtime.AgentRuntime.run_child`); without it an agent tool
            reports that child runs are unsupported here.
    """

    def __init__(
        self, runs: RunStore, *, run_child: pipeline.ChildRunStarter | None = None
    ) -> None:
        self.runs = runs
        self.run_child = run_child

    async def execute(self, run: RunState, agent: Agent, emit: EventSink) -> RunState:
        return await self._run(run, agent, emit, prepared=False)

    async def resume(self, run: RunState, agent: Agent, emit: EventSink) -> RunState:
        """Continue a run whose client calls were answered (``submit_tool_outputs`` has
        observed them and saved the run): the loop goes on with the next step."""
        return await self._run(run, agent, emit, prepared=True)

    async def _run(
        self, run: RunState, agent: Agent, emit: EventSink, *, prepared: bool
    ) -> RunState:
        with run_scope(run, agent):  # every span below continues the run's trace
            return await self._loop(run, agent, emit, prepared=prepared)

    async def _loop(
        self, run: RunState, agent: Agent, emit: EventSink, *, prepared: bool
    ) -> RunState:
        decision: Decision
        kept = RunResults(self.runs, run.id)  # large results by reference
        try:
            try:
                ended = await self._iterate(run, agent, emit, kept, prepared=prepared)
            except BaseException as exc:
                await self._settle_after(exc, run, kept)
                raise
            if ended is None:
                return run  # paused for the caller, saved: no finalize
            decision = ended
        except RunCancelled:
            decision = Fail("cancelled by request", status=RunStatus.CANCELLED, code="cancelled")
        except AstromeshError as exc:  # a known failure (a prompt that cannot render...)
            decision = Fail(exc.message, code=exc.code)
        except Exception as exc:
            logger.exception("run_id=<%s> | run failed unexpectedly", run.id)
            decision = Fail(f"internal error: {type(exc).__name__}", code="internal_error")
        try:
            await pipeline.finalize(run, agent, decision, emit, run_child=self.run_child)
        except StateUnavailable as exc:
            # The answer could not be remembered (history or episodes are in the lost store):
            # the run is recorded as failed for that reason rather than left running.
            logger.warning("run_id=<%s> | finalize failed: %s", run.id, exc.message)
            await pipeline.finalize(run, agent, Fail(exc.message, code=exc.code), emit)
        await self._save_final_retrying(run, kept)
        return run

    async def _iterate(
        self, run: RunState, agent: Agent, emit: EventSink, kept: RunResults, *, prepared: bool
    ) -> Decision | None:
        """The iterations, until a decision ends the run, or ``None`` once the run paused
        for the client (and was saved). A checkpoint may be in flight when this raises;
        none is when it returns."""
        if not prepared:
            await pipeline.prepare(run, agent, emit)
            await self._begin_checkpoint(run, kept)
        while True:
            limit = pipeline.check_limits(run, agent)
            if limit is not None:
                await self._wait_checkpoint(run, kept)
                return limit
            decision = await pipeline.step(run, agent, emit, resolve=kept.resolve)
            await self._wait_checkpoint(run, kept)  # durable before the tools or the end
            if not isinstance(decision, Act):
                return await pipeline.screen_answer(run, agent, decision)
            run.pending_actions = list(decision.actions)
            results = await pipeline.act(
                run,
                agent,
                decision.actions,
                emit,
                run_child=self.run_child,
                keep=kept.keep,
            )
            if run.status is RunStatus.REQUIRES_ACTION:
                await self._begin_checkpoint(run, kept)
                await self._wait_checkpoint(run, kept)
                return None
            pipeline.observe(run, agent, results)
            await self._begin_checkpoint(run, kept)

    async def _save_final_retrying(self, run: RunState, kept: RunResults) -> None:
        """The final write, retried while the store is unavailable (see
        :data:`FINAL_SAVE_DELAYS`); the last failure is raised."""
        keep_spans(run)
        for delay in (*FINAL_SAVE_DELAYS, None):
            try:
                await self._save_final(run, kept)
                return
            except StateUnavailable as exc:
                if delay is None:
                    logger.error("run_id=<%s> | final state not written: %s", run.id, exc.message)
                    raise
                logger.warning("run_id=<%s> | final write failed, retrying: %s", run.id, exc)
                await asyncio.sleep(delay)

    async def _begin_checkpoint(self, run: RunState, kept: RunResults) -> None:
        keep_spans(run)
        await kept.begin_checkpoint(run)

    async def _wait_checkpoint(self, run: RunState, kept: RunResults) -> None:
        """Wait for the checkpoint in flight; a conflict with a cancel raises
        :class:`RunCancelled` (the run takes the stored version, for its final save)."""
        try:
            await kept.wait_checkpoint()
        except ConflictError:
            stored = await self.runs.get(run.id)
            if stored.status is RunStatus.CANCELLED:
                run.version = stored.version
                raise RunCancelled from None
            raise

    async def _settle_after(self, exc: BaseException, run: RunState, kept: RunResults) -> None:
        """Before an exception leaves the loop, wait for the checkpoint still in flight.

        Its own failure is raised in place of ``exc``: without write-behind it would have
        been raised first, before the step that raised ``exc`` began. When the task is being
        cancelled (``exc`` is not an ``Exception``) the write is only waited for, its failure
        logged, and the cancellation goes on.
        """
        if not kept.in_flight:
            return
        if isinstance(exc, Exception):
            await self._wait_checkpoint(run, kept)
            return
        try:
            await kept.wait_checkpoint()
        except Exception as failed:  # noqa: BLE001 - the cancellation is what goes on
            logger.warning("run_id=<%s> | checkpoint failed while stopping: %s", run.id, failed)

    async def _save_final(self, run: RunState, kept: RunResults) -> None:
        """The final save wins over a concurrent cancel: the run did finish."""
        try:
            await kept.checkpoint(run)
        except ConflictError:
            stored = await self.runs.get(run.id)
            run.version = stored.version
            await kept.checkpoint(run)

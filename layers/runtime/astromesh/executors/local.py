"""LocalExecutor: the step loop in-process (CLI, local server, tests).

The run is saved after prepare, after every observe and at the end, with the store's
optimistic concurrency: if someone else wrote the run meanwhile (a cancel request), the save
fails, the executor reloads, and a cancelled run stops before its next step.
"""

from __future__ import annotations

import logging

from astromesh import pipeline
from astromesh.agent import Agent
from astromesh.errors import AstromeshError, ConflictError
from astromesh.executors.base import Executor
from astromesh.executors.results import RunResults
from astromesh.orchestration.base import Act, Decision, Fail
from astromesh.runs.events import EventSink
from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.base import RunStore

logger = logging.getLogger(__name__)


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
        decision: Decision
        kept = RunResults(self.runs, run.id)  # large results by reference
        try:
            if not prepared:
                await pipeline.prepare(run, agent, emit)
                await self._checkpoint(run)
            while True:
                limit = pipeline.check_limits(run, agent)
                if limit is not None:
                    decision = limit
                    break
                decision = await pipeline.step(run, agent, emit, resolve=kept.resolve)
                if not isinstance(decision, Act):
                    break
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
                    await self._checkpoint(run)  # paused for the caller: no finalize
                    return run
                pipeline.observe(run, agent, results)
                await self._checkpoint(run)
        except RunCancelled:
            decision = Fail("cancelled by request", status=RunStatus.CANCELLED, code="cancelled")
        except AstromeshError as exc:  # a known failure (a prompt that cannot render...)
            decision = Fail(exc.message, code=exc.code)
        except Exception as exc:
            logger.exception("run_id=<%s> | run failed unexpectedly", run.id)
            decision = Fail(f"internal error: {type(exc).__name__}", code="internal_error")
        await pipeline.finalize(run, agent, decision, emit)
        await self._save_final(run)
        return run

    async def _checkpoint(self, run: RunState) -> None:
        try:
            await self.runs.save(run)
        except ConflictError:
            stored = await self.runs.get(run.id)
            if stored.status is RunStatus.CANCELLED:
                run.version = stored.version
                raise RunCancelled from None
            raise

    async def _save_final(self, run: RunState) -> None:
        """The final save wins over a concurrent cancel: the run did finish."""
        try:
            await self.runs.save(run)
        except ConflictError:
            stored = await self.runs.get(run.id)
            run.version = stored.version
            await self.runs.save(run)

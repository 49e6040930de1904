"""Starting, streaming and cancelling runs for the channels.

The channels use the runtime's two halves of ``run()`` apart: an async request answers with
the run id before the loop starts, and a stream is returned before the first event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from astromesh.agent import Agent
from astromesh.channels.errors import TooManyRuns
from astromesh.errors import AstromeshError, ConfigurationError, ConflictError
from astromesh.runs.events import EventSink, RunEvent, discard
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import AgentRuntime
from astromesh.text_boundary import require_valid

if TYPE_CHECKING:
    from astromesh.executors.stepfunctions.executor import StepFunctionsExecutor

logger = logging.getLogger(__name__)

_CANCEL_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class RunInput:
    """What a caller asks for, whichever channel it came through."""

    query: str
    session_id: str = "default"
    context: dict[str, Any] | None = None
    tenant: str = "default"

    def __post_init__(self) -> None:
        """Every channel's run input passes the text boundary: a run is never started (or
        stored) with text no store can write. Messaging repairs its text before this."""
        require_valid({"query": self.query, "session_id": self.session_id})
        if self.context is not None:
            require_valid(self.context, field="context")


class RunLauncher:
    """Starts runs for the channels: at most ``max_inflight`` at once in this process.

    Args:
        runtime: the runtime whose agents run.
        max_inflight: runs this process drives (or waits on) at once.
        standard_machine_arn: the Standard machine async runs go to where this process
            cannot keep running after answering (Lambda).
        express_machine_arn: the Express machine synchronous runs go to; unset, they run
            in-process. Runs whose own time limit exceeds what Express allows
            (:data:`EXPRESS_MAX_SECONDS`) run in-process either way.
    """

    def __init__(
        self,
        runtime: AgentRuntime,
        *,
        max_inflight: int,
        standard_machine_arn: str | None = None,
        express_machine_arn: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.max_inflight = max_inflight
        self.standard_machine_arn = standard_machine_arn
        self.express_machine_arn = express_machine_arn
        self._inflight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._machine: StepFunctionsExecutor | None = None

    async def run_on_state_machine(self, agent: Agent, request: RunInput) -> RunState:
        """Create a run and start it on the Standard state machine; return it still running.

        For processes that freeze after answering (Lambda): the run goes on in Step
        Functions, and ``GET /v1/runs/{id}`` reads it from the shared store.

        Raises:
            ConfigurationError: no Standard machine is configured.
        """
        if self.standard_machine_arn is None:
            raise ConfigurationError("no Standard state machine is configured for async runs")
        run = await self._create(agent, request)
        await (await self._state_machines()).start(run)
        return run

    async def run(self, agent: Agent, request: RunInput) -> RunState:
        """Create and execute a run, returning it finished: on the Express machine when one
        is configured and the agent's time limit fits in it, in this process otherwise.

        The run executes in its own task and is awaited shielded: a client that disconnects
        does not interrupt it half-way (which would leave it ``running`` in the store).
        """
        with self._reserve() as stack:
            run = await self._create(agent, request)
            if self._on_express(agent):
                machines = await self._state_machines()
                work = machines.execute(run, agent, discard)
            else:
                work = self._execute(run, agent, discard)
            task = self._spawn(work, stack.pop_all())
        return await asyncio.shield(task)

    def _on_express(self, agent: Agent) -> bool:
        if self.express_machine_arn is None:
            return False
        from astromesh.executors.stepfunctions.executor import EXPRESS_MAX_SECONDS  # in AWS only

        if agent.timeout_seconds > EXPRESS_MAX_SECONDS:
            logger.info(
                "agent=<%s> | timeout_seconds=%s exceeds Express's %ss: running in-process",
                agent.name,
                agent.timeout_seconds,
                EXPRESS_MAX_SECONDS,
            )
            return False
        return True

    async def _state_machines(self) -> StepFunctionsExecutor:
        if self._machine is None:
            from astromesh.executors.stepfunctions.executor import StepFunctionsExecutor

            runs = (await self.runtime.state()).runs
            self._machine = StepFunctionsExecutor(
                runs,
                express_arn=self.express_machine_arn,
                standard_arn=self.standard_machine_arn,
            )
        return self._machine

    async def run_in_background(self, agent: Agent, request: RunInput) -> RunState:
        """Create a run and execute it in a task of this process; return it still running."""
        with self._reserve() as stack:
            run = await self._create(agent, request)
            self._spawn(self._execute(run, agent, discard), stack.pop_all())
        return run

    async def start_stream(
        self, agent: Agent, request: RunInput
    ) -> tuple[RunState, AsyncIterator[RunEvent]]:
        """Create a run, start it, and return it with the iterator of its events.

        The run executes in its own task: if the consumer goes away (a client disconnects)
        the run still finishes and is persisted, and can be read with ``GET /v1/runs/{id}``.
        The iterator ends after the ``done`` event.
        """
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()

        async def drive(run: RunState) -> RunState:
            try:
                return await self._execute(run, agent, queue.put)
            finally:
                await queue.put(None)

        with self._reserve() as stack:
            run = await self._create(agent, request)
            self._spawn(drive(run), stack.pop_all())

        async def events() -> AsyncIterator[RunEvent]:
            while (event := await queue.get()) is not None:
                yield event

        return run, events()

    async def cancel(self, run_id: str) -> RunState:
        """Mark a running run cancelled; its loop stops before its next tool calls (the local
        loop may make one more model call, see :mod:`astromesh.executors.local`).

        The write uses the store's optimistic concurrency: if the loop saved meanwhile, the
        run is read again and the cancel retried, so neither write is lost.

        Raises:
            NotFoundError: no such run.
            ConflictError: the run already ended.
        """
        runs = (await self.runtime.state()).runs
        for _ in range(_CANCEL_ATTEMPTS):
            run = await runs.get(run_id)
            if run.status.is_terminal:
                raise ConflictError(
                    f"run {run_id!r} already ended ({run.status.value}); only a running run"
                    " can be cancelled"
                )
            run.status = RunStatus.CANCELLED
            run.error = "cancelled by request"
            try:
                return await runs.save(run)
            except ConflictError:
                continue
        raise ConflictError(f"run {run_id!r} changed on every attempt to cancel it; retry")

    async def aclose(self, grace_seconds: float = 5.0) -> None:
        """Let background runs finish for a moment, then cancel what is left."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- helpers -----------------------------------------------------------------------------

    def _reserve(self) -> contextlib.ExitStack:
        """Take one of the in-flight places; released when the returned stack closes.

        Raises:
            TooManyRuns: every place is taken (answered 429 with Retry-After).
        """
        if self._inflight >= self.max_inflight:
            raise TooManyRuns(
                f"this server is already running {self._inflight} runs (the limit is"
                f" {self.max_inflight}); retry shortly"
            )
        self._inflight += 1
        stack = contextlib.ExitStack()
        stack.callback(self._release)
        return stack

    def _release(self) -> None:
        self._inflight -= 1

    async def _create(self, agent: Agent, request: RunInput) -> RunState:
        return await self.runtime.create_run(
            agent,
            request.query,
            session_id=request.session_id,
            context=request.context,
            tenant=request.tenant,
        )

    async def _execute(self, run: RunState, agent: Agent, emit: EventSink) -> RunState:
        try:
            return await self.runtime.execute(run, agent, emit)
        except Exception as exc:
            # The executor settles every run failure itself; what reaches here is the store
            # failing under it. Tell a listener (with the stable code: a client may retry on
            # ``state_unavailable``), and let the caller see the exception.
            logger.exception("run_id=<%s> | run could not be executed", run.id)
            known = isinstance(exc, AstromeshError)
            await emit(
                RunEvent(
                    "error",
                    {
                        "code": exc.code if known else "internal_error",
                        "message": exc.message if known else "internal error",
                        "run_id": run.id,
                    },
                )
            )
            raise

    def _spawn(
        self, work: Coroutine[Any, Any, RunState], stack: contextlib.ExitStack
    ) -> asyncio.Task[RunState]:
        """Run ``work`` in a task kept referenced until done; close ``stack`` after it."""

        async def wrapped() -> RunState:
            with stack:
                return await work

        task = asyncio.create_task(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[RunState]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # logged by _execute; retrieving it keeps asyncio from warning

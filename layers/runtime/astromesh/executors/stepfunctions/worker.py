"""What a warm Lambda container keeps between invocations of the step loop's functions.

The runtime (agents read from ``ASTROMESH_AGENTS_DIR``, the store from the
``ASTROMESH_STATE_*`` settings) is built on the first invocation and reused by every later one
in the same container, and so is one event loop: provider HTTP clients and store connections
belong to the loop they were opened on, so a fresh ``asyncio.run`` per invocation would strand
them.

A run's agent is found by name as the API found it (the agent registry first, then the
agents folder: :func:`astromesh.channels.control_plane.agent_source`), so a run of an agent
registered through ``POST /v1/agents`` runs on the state machine like a file agent.

The runtime is imported where it is first built (:meth:`LambdaWorker._with_driver`), so a
handler's module load costs Powertools and this file (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from astromesh.executors.driver import StepDriver
    from astromesh.runtime import AgentRuntime

T = TypeVar("T")


class LambdaWorker:
    """One container's event loop, runtime and :class:`StepDriver`, created on first use."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._runtime: AgentRuntime | None = None
        self._driver: StepDriver | None = None
        self._close_agents: Callable[[], Awaitable[None]] | None = None

    @property
    def runtime(self) -> AgentRuntime:
        """The container's runtime (built by the first :meth:`run`)."""
        if self._runtime is None:
            raise RuntimeError("the worker has not run yet")
        return self._runtime

    def run(self, work: Callable[[StepDriver], Awaitable[T]]) -> T:
        """Run ``work(driver)`` to completion on the container's loop (one invocation), then
        send the spans it recorded when OTLP export is on (the container may be frozen as
        soon as the handler returns, with the batch still waiting)."""
        try:
            return self._loop.run_until_complete(self._with_driver(work))
        finally:
            from astromesh.telemetry.provider import flush  # loaded by the first span anyway

            flush()

    async def _with_driver(self, work: Callable[[StepDriver], Awaitable[T]]) -> T:
        if self._driver is None:
            from astromesh.channels.control_plane import agent_source
            from astromesh.channels.settings import ServerSettings
            from astromesh.executors.driver import StepDriver
            from astromesh.runtime import AgentRuntime

            runtime = AgentRuntime()
            runs = (await runtime.state()).runs
            agents, self._close_agents = await agent_source(
                runtime, ServerSettings.from_env(runtime.env, lambda_=True)
            )
            self._driver = StepDriver(
                runs, agents, run_child=runtime.run_child, metrics=runtime.metrics
            )
            self._runtime = runtime
        return await work(self._driver)

    def close(self) -> None:
        """Close the runtime and the loop (tests that emulate containers call this)."""
        if self._close_agents is not None:
            self._loop.run_until_complete(self._close_agents())
        if self._runtime is not None:
            self._loop.run_until_complete(self._runtime.close())
        self._loop.close()

"""Everything a channel needs, built once per app (or Lambda container); free of FastAPI,
whose dependencies reaching it are in :mod:`astromesh.channels.security`.

The control plane (agent registry, API keys) lives in the same durable store as the runs
and is opened on first use: ``httpx``'s ASGI transport and Mangum (with ``lifespan="off"``,
so a Lambda invocation does not start up and shut down the app each time) never run a
lifespan, and the first request should not need one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from astromesh.auth import KeyStore
from astromesh.channels.catalog import AgentCatalog
from astromesh.channels.control_plane import (
    ControlPlane,
    open_control_plane,
    registration_policy,
)
from astromesh.channels.launcher import RunLauncher
from astromesh.channels.settings import ServerSettings
from astromesh.runtime import AgentRuntime

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.workflows.engine import WorkflowEngine
    from astromesh.workflows.run import WorkflowRun

logger = logging.getLogger(__name__)


@dataclass
class Services:
    """The runtime, settings and the per-app helpers built on them."""

    runtime: AgentRuntime
    settings: ServerSettings
    launcher: RunLauncher
    _control: ControlPlane | None = None
    _catalog: AgentCatalog | None = None
    _workflows: WorkflowEngine | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def build(cls, runtime: AgentRuntime, settings: ServerSettings) -> Services:
        launcher = RunLauncher(
            runtime,
            max_inflight=settings.max_inflight_runs,
            standard_machine_arn=settings.standard_machine_arn,
            express_machine_arn=settings.express_machine_arn,
        )
        return cls(runtime, settings, launcher)

    async def control(self) -> ControlPlane:
        if self._control is None:
            async with self._lock:
                if self._control is None:
                    control = await open_control_plane(self.runtime)
                    self._catalog = AgentCatalog(
                        self.runtime,
                        control.registry,
                        policy=registration_policy(self.runtime, self.settings),
                    )
                    self._control = control
        return self._control

    async def catalog(self) -> AgentCatalog:
        await self.control()
        assert self._catalog is not None
        return self._catalog

    async def workflows(self) -> WorkflowEngine:
        """The workflow engine over this app's catalog: a registered workflow's agent steps
        resolve in its run's tenant, its tools run under the registration policy. Built on
        first use, when it also carries on the runs a previous process left unfinished."""
        if self._workflows is None:
            catalog = await self.catalog()

            async def agent_of(name: str, run: WorkflowRun) -> Agent:
                if run.origin == "file":
                    return await self.runtime.get(name)
                return await catalog.agent(await catalog.entry(name, tenant=run.tenant))

            from astromesh.workflows.engine import WorkflowEngine  # on the first workflow request

            engine = WorkflowEngine(self.runtime, agents=agent_of, policy=catalog.policy)
            if self.settings.workflow_machine_arn:
                await _on_state_machine(engine, self.settings.workflow_machine_arn)
            async with self._lock:
                if self._workflows is None:
                    self._workflows = engine
                    await engine.recover()
        return self._workflows

    async def keys(self) -> KeyStore:
        return (await self.control()).keys

    async def aclose(self) -> None:
        """Stop background runs, close registered agents and any backend opened here."""
        await self.launcher.aclose()
        if self._workflows is not None:
            await self._workflows.aclose()
            self._workflows = None
        if self._catalog is not None:
            await self._catalog.aclose()
        if self._control is not None:
            await self._control.aclose()
        self._control = self._catalog = None


async def _on_state_machine(engine: WorkflowEngine, arn: str) -> None:
    """New workflow runs go to the workflow machine (a Lambda freezes after answering, so
    nothing may drive a run in-process there); approvals answer its task tokens."""
    from astromesh.workflows.stepfunctions.executor import StepFunctionsWorkflowExecutor
    from astromesh.workflows.stepfunctions.machine import WorkflowMachine

    executor = StepFunctionsWorkflowExecutor(await engine.store(), WorkflowMachine(arn))
    engine.executors[executor.name] = executor
    engine.default_executor = executor.name

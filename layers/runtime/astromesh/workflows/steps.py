"""Doing one agent or tool action in-process, as the local executor does.

An agent step is a child run of the agent through the runtime (a run record like any other,
so its usage and cost count), in the session ``workflow/<run id>/<step>``. A tool step is
one builtin call built with the grants of the workflow's origin: the agents folder's
workflows get a file agent's, registered ones the registration policy's, and a builtin the
policy refuses is refused here too (registration already refused it; this holds if the
policy was tightened since). Every failure is an :class:`Error` outcome, never an
exception, so retries and ``on_error`` decide what happens next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from astromesh.errors import AstromeshError
from astromesh.runs.state import RunState, RunStatus
from astromesh.runtime import abandon_run
from astromesh.security.grants import FILE_AGENT_GRANTS
from astromesh.tools.base import ToolContext
from astromesh.workflows.actions import CallTool, Error, Ok, Outcome, RunAgent, TimedOut
from astromesh.workflows.run import WorkflowRun

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.runtime import AgentRuntime
    from astromesh.security import RegistrationPolicy

logger = logging.getLogger(__name__)

AgentResolver = Callable[[str, WorkflowRun], Awaitable["Agent"]]
"""``(agent name, workflow run) -> built agent``: how a run's agent steps find their agent
(the tenant's catalog for registered workflows, the agents folder for file ones)."""


class StepRunner:
    """Runs :class:`RunAgent` and :class:`CallTool` actions for the local executor."""

    def __init__(
        self,
        runtime: AgentRuntime,
        *,
        agents: AgentResolver | None = None,
        policy: RegistrationPolicy | None = None,
    ) -> None:
        self.runtime = runtime
        self.agents = agents or (lambda name, _run: runtime.get(name))
        self.policy = policy

    async def do(self, run: WorkflowRun, action: RunAgent | CallTool) -> Outcome:
        """The action's outcome, bounded by its ``timeout_seconds``."""
        work = self._agent(run, action) if isinstance(action, RunAgent) else self._tool(run, action)
        try:
            return await asyncio.wait_for(work, timeout=action.timeout_seconds)
        except TimeoutError:
            return TimedOut()
        except AstromeshError as exc:
            return Error(type=exc.code, message=exc.message)
        except Exception as exc:
            logger.exception("workflow_run=<%s> | step %s failed unexpectedly", run.id, action.step)
            return Error(type="internal_error", message=f"internal error: {type(exc).__name__}")

    async def _agent(self, run: WorkflowRun, action: RunAgent) -> Outcome:
        child, agent = await self.create_child(run, action)
        try:
            return child_outcome(await self.runtime.execute(child, agent))
        except asyncio.CancelledError:
            # The step's timeout (or a stopping server) ended the wait: the child is marked
            # cancelled rather than left "running" in the store for ever.
            await abandon_run((await self.runtime.state()).runs, child.id)
            raise

    async def create_child(self, run: WorkflowRun, action: RunAgent) -> tuple[RunState, Agent]:
        """Store the child run of ``action`` (screened, not started) and its built agent:
        executed here by the local executor, started by id on the agent machine by the
        Step Functions one."""
        agent = await self.agents(action.agent, run)
        child = await self.runtime.create_run(
            agent,
            action.input,
            session_id=f"workflow/{run.id}/{action.step}",
            context={"workflow": run.workflow, "workflow_run_id": run.id, "step": action.step},
            tenant=run.tenant,
        )
        return child, agent

    async def _tool(self, run: WorkflowRun, action: CallTool) -> Outcome:
        from astromesh.channels.builtin_calls import build_builtin_tool, builtin_refusal

        grants = FILE_AGENT_GRANTS
        if run.origin != "file":
            if self.policy is None:
                return Error(type="forbidden", message="no registration policy to run it under")
            refusal = builtin_refusal(self.policy, action.tool)
            if refusal is not None:
                return Error(type="forbidden", message=refusal)
            grants = self.policy.grants()
        tool = build_builtin_tool(self.runtime, action.tool, {}, grants=grants)
        try:
            problems = tool.argument_errors(action.arguments)
            if problems:
                return Error(type="invalid_arguments", message="; ".join(problems))
            context = ToolContext(
                run_id=run.id,
                agent=f"workflow:{run.workflow}",
                session_id=f"workflow/{run.id}",
                namespace=run.tenant,
            )
            result = await tool.call(action.arguments, context)
        finally:
            closer = getattr(tool, "aclose", None)
            if closer is not None:
                await closer()
        if result.ok:
            return Ok(output=result.data if result.data is not None else result.content)
        return Error(type="tool_error", message=result.content)


def child_outcome(child: RunState) -> Outcome:
    """An agent step's outcome from its ended child run."""
    if child.status is RunStatus.SUCCEEDED:
        return Ok(output=child.answer or "", data=child.data, child_run_id=child.id)
    return Error(
        type=child.status.value,
        message=f"agent run {child.id} {child.status.value}: {child.error or 'no answer'}",
    )

"""What a warm Lambda container keeps for the workflow machine's tasks.

It rides on the step loop's :class:`~astromesh.executors.stepfunctions.worker.LambdaWorker`
(one event loop, one runtime, the agent source the API uses), and adds the workflow run
store and a :class:`~astromesh.workflows.stepfunctions.driver.WorkflowDriver` over it. Agent
and tool steps are done by the local executor's own :class:`~astromesh.workflows.steps.
StepRunner` (same child run, same grants), only split at the child run: here it is created,
the machine runs it. The ``tool_executor`` function serves agent runs' tool calls and
workflows' tool steps from the same container, sharing that loop and runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from astromesh.executors.stepfunctions.worker import LambdaWorker

if TYPE_CHECKING:
    from astromesh.agent import Agent
    from astromesh.executors.driver import StepDriver
    from astromesh.workflows import Outcome, RunAgent, WorkflowRun
    from astromesh.workflows.stepfunctions.driver import WorkflowDriver

T = TypeVar("T")


class WorkflowWorker:
    """The container's :class:`WorkflowDriver`, created on first use.

    Args:
        steps: the container's step-loop worker to share (a new one when omitted).
    """

    def __init__(self, steps: LambdaWorker | None = None) -> None:
        self.steps = steps or LambdaWorker()
        self._driver: WorkflowDriver | None = None

    def run(self, work: Callable[[WorkflowDriver], Awaitable[T]]) -> T:
        """Run ``work(driver)`` to completion on the container's loop (one invocation)."""
        return self.steps.run(lambda step_driver: self._with_driver(step_driver, work))

    async def _with_driver(
        self, step_driver: StepDriver, work: Callable[[WorkflowDriver], Awaitable[T]]
    ) -> T:
        if self._driver is None:
            self._driver = await self._build(step_driver)
        return await work(self._driver)

    async def _build(self, step_driver: StepDriver) -> WorkflowDriver:
        from astromesh.channels.control_plane import registration_policy
        from astromesh.channels.settings import ServerSettings
        from astromesh.config.workflow import WorkflowDocument
        from astromesh.errors import NotFoundError
        from astromesh.runtime import abandon_run
        from astromesh.workflows.notify import ApprovalNotifier
        from astromesh.workflows.stepfunctions.driver import WorkflowDriver
        from astromesh.workflows.steps import StepRunner, child_outcome
        from astromesh.workflows.store import open_workflow_store

        runtime = self.steps.runtime
        runs, agents = step_driver.runs, step_driver.agents

        async def agent_of(name: str, run: WorkflowRun) -> Agent:
            # as the API resolves them: a file workflow's agents are the folder's, a
            # registered one's are its tenant's (registered, else the folder's)
            if run.origin == "file":
                return await runtime.get(name)
            return await agents(name, run.tenant)

        settings = ServerSettings.from_env(runtime.env, lambda_=True)
        policy = registration_policy(runtime, settings)
        steps = StepRunner(runtime, agents=agent_of, policy=policy)

        async def start_child(run: WorkflowRun, action: RunAgent) -> str:
            child, _agent = await steps.create_child(run, action)
            return child.id

        async def read_child(child_id: str) -> Outcome | None:
            try:
                child = await runs.get(child_id)
            except NotFoundError:
                return None
            if child.status.is_terminal:
                return child_outcome(child)
            # Its execution ended without finalizing it (the step's timeout stopped it, or it
            # failed): recorded cancelled, as the local executor records a child it abandons.
            await abandon_run(runs, child_id)
            return None

        def workflow_of(run: WorkflowRun) -> WorkflowDocument:
            return WorkflowDocument.model_validate(run.document)

        store = open_workflow_store(await runtime.state())
        notifier = ApprovalNotifier(store, workflow_of, env=runtime.env, policy=policy)

        async def on_approval(run: WorkflowRun) -> None:
            await notifier(run)

        return WorkflowDriver(
            store,
            workflow_of=workflow_of,
            start_child=start_child,
            read_child=read_child,
            call_tool=steps.do,
            on_approval=on_approval,
        )

    def close(self) -> None:
        self.steps.close()

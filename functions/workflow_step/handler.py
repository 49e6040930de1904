"""workflow_step: one step of a workflow run on its id, a task of the workflow machine.

Invoked by the Step Functions machine of ``astromesh.workflows.stepfunctions``. Events:

- ``{"action": "advance", "run_id"}`` -> ``{"run_id", "next": {"kind", "step", ...}}``: what
  the interpreter does next (a child agent run is created in the store first);
- ``{"action": "apply", "run_id", "next", "result"}``: what the dispatched state answered,
  applied to the run (retries and ``on_error`` are decided here);
- ``{"action": "await_approval", "run_id", "next", "task_token"}``: the approval's token is
  stored with the pending approval (the machine waits on it: ``.waitForTaskToken``);
- ``{"action": "fail", "run_id", "error": {"Error", "Cause"}}``: the machine failed for good.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.workflows.stepfunctions.worker import WorkflowWorker

logger = Logger(service="astromesh-workflow-step")
worker = WorkflowWorker()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action, run_id = event["action"], event["run_id"]
    logger.append_keys(run_id=run_id, action=action)
    answer = worker.run(lambda driver: driver.handle(action, event))
    logger.info("workflow step done", extra={"answer": answer})
    return answer

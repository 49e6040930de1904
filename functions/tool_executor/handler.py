"""tool_executor: one tool call of a run, invoked by the state machine's Map state; or a
workflow's tool step, invoked by the workflow machine.

Event: ``{"run_id": "...", "call_id": "..."}``. The full result is written beside the run
(``RunStore.put_result``), never into the run document, so sibling calls run in parallel
without conflicts; the answer is only ``{"call_id", "ok"}``.

Workflow event: ``{"workflow_run_id": "...", "next": {"kind": "call_tool", "step"}}``: the
step's tool is called with its rendered arguments (read from the run) and the outcome is
applied to the workflow run; the answer is only ``{"ok"}``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.executors.stepfunctions.worker import LambdaWorker

if TYPE_CHECKING:
    from astromesh.workflows.stepfunctions.worker import WorkflowWorker

logger = Logger(service="astromesh-tool-executor")
worker = LambdaWorker()

SAFETY_SECONDS = 2.0
"""Stop a tool this long before the Lambda's own timeout, so its result still gets written."""


@functools.cache
def workflows() -> WorkflowWorker:
    """The workflow side, on the same loop and runtime; imported on its first tool step
    (a container that only runs agents' tool calls never loads the workflow package)."""
    from astromesh.workflows.stepfunctions.worker import WorkflowWorker

    return WorkflowWorker(worker)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "workflow_run_id" in event:
        run_id, step = event["workflow_run_id"], event["next"]["step"]
        logger.append_keys(workflow_run_id=run_id, step=step)
        answer = workflows().run(lambda driver: driver.call_tool(run_id, event["next"]))
        logger.info("workflow tool step done", extra={"ok": answer["ok"]})
        return answer
    run_id, call_id = event["run_id"], event["call_id"]
    logger.append_keys(run_id=run_id, call_id=call_id)
    time_limit = context.get_remaining_time_in_millis() / 1000.0 - SAFETY_SECONDS
    answer = worker.run(lambda driver: driver.act(run_id, call_id, time_limit=time_limit))
    logger.info("tool call done", extra={"ok": answer["ok"]})
    return dict(answer)

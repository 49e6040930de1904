"""tool_executor: one tool call of a run, invoked by the state machine's Map state.

Event: ``{"run_id": "...", "call_id": "..."}``. The full result is written beside the run
(``RunStore.put_result``), never into the run document, so sibling calls run in parallel
without conflicts; the answer is only ``{"call_id", "ok"}``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.executors.stepfunctions.worker import LambdaWorker

logger = Logger(service="astromesh-tool-executor")
worker = LambdaWorker()

SAFETY_SECONDS = 2.0
"""Stop a tool this long before the Lambda's own timeout, so its result still gets written."""


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run_id, call_id = event["run_id"], event["call_id"]
    logger.append_keys(run_id=run_id, call_id=call_id)
    time_limit = context.get_remaining_time_in_millis() / 1000.0 - SAFETY_SECONDS
    answer = worker.run(lambda driver: driver.act(run_id, call_id, time_limit=time_limit))
    logger.info("tool call done", extra={"ok": answer["ok"]})
    return dict(answer)

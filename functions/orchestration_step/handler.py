"""orchestration_step: one stage of a run (prepare / step / observe / finalize) on its id.

Invoked by the Step Functions state machine of ``astromesh.executors.stepfunctions``.
Event: ``{"action": "prepare" | "step" | "observe" | "finalize", "run_id": "..."}``, plus
``"acted": [{"call_id", "ok", "child_run_id"}...]`` for ``step`` (the Map's output, observed
before the next decision; ``observe`` takes it too, for executions started on a definition
that still had an ``Observe`` task) and ``"error": {"Error", "Cause"}`` for ``finalize`` on
the state machine's failure path.
Answers with ids only; ``step`` answers ``{"next": "act" | "finish" | "fail", "actions":
[{"run_id", "call_id"}...]}``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.executors.stepfunctions.worker import LambdaWorker

logger = Logger(service="astromesh-orchestration-step")
worker = LambdaWorker()

ACTIONS = ("prepare", "step", "observe", "finalize")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action, run_id = event["action"], event["run_id"]
    logger.append_keys(run_id=run_id, action=action)
    if action in ("step", "observe"):
        answer = worker.run(lambda driver: getattr(driver, action)(run_id, event.get("acted")))
    elif action == "finalize":
        answer = worker.run(lambda driver: driver.finalize(run_id, event.get("error")))
    elif action in ACTIONS:
        answer = worker.run(lambda driver: getattr(driver, action)(run_id))
    else:
        raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
    logger.info("stage done", extra={"answer": answer})
    return dict(answer)

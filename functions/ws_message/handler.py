"""ws_message: the WebSocket API's ``$default`` route, and the runs it starts.

- A message ``{"action": "run", "agent"?, "query", "session_id"?, "context"?}`` (or
  upstream's ``{"query": ...}``) creates a run for the registered connection and hands it to
  an asynchronous invocation of this function, so the route answers at once;
  ``{"action": "cancel"}`` cancels the connection's run. A bad message (not JSON, unknown
  action, agent not allowed) is answered with an ``error`` frame; the connection stays open.
- ``{"astromesh_job": {...}}`` (that invocation): execute the run, pushing its frames
  (``status``, ``token``, ``tool_call``, ``tool_result``, ``error``, ``done``) with the API
  Gateway Management API: tokens batched (every ``ASTROMESH_WS_FLUSH_MS``, default 150 ms, or
  64 tokens), every frame below 32 KB; a client gone (410) stops delivery and cancels the run.

Settings: ``ASTROMESH_REDIS_URL`` (the registry), ``ASTROMESH_WS_CALLBACK_URL`` (optional;
else the event's domain and stage), the runtime's ``ASTROMESH_AGENTS_DIR`` / ``ASTROMESH_STATE_*``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from astromesh.channels.aws.invoke import JOB_KEY, dispatch
from astromesh.channels.aws.worker import ChannelWorker

logger = Logger(service="astromesh-ws-message")
worker = ChannelWorker()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if JOB_KEY in event:
        job = event[JOB_KEY]
        logger.append_keys(connection_id=job["connection_id"], run_id=job["run_id"])
        result = worker.run(lambda: worker.gateway.run_job(job))
        logger.info("run delivered", extra=result)
        return result
    request = APIGatewayWebSocketEvent(event).request_context
    logger.append_keys(connection_id=request.connection_id)
    reply = worker.run(lambda: worker.gateway.message(event))
    if reply.job is not None:
        try:
            dispatch(context, reply.job)
        except (ClientError, BotoCoreError) as exc:
            logger.error("run not handed off", extra={"error": str(exc)})
            worker.run(lambda: worker.gateway.abandon(reply.job or {}, "the run could not start"))
            return {"statusCode": 503}
    logger.info("message", extra={"status": reply.response["statusCode"]})
    return reply.response

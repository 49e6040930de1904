"""ws_connect: the WebSocket API's ``$connect`` and ``$disconnect`` routes.

- ``$connect``: the API key (``Authorization: Bearer``, ``x-api-key`` or ``?api_key=``, as
  browsers cannot set headers on a WebSocket) is checked against the same key store as the
  REST API; ``?agent=`` (optional) must be one the key may use. The connection is then
  registered in Redis with a TTL: its tenant, agents, agent, ``?session_id=`` and the
  endpoint frames are posted to. A refusal answers 401/403/404, which refuses the handshake.
- ``$disconnect``: the connection is unregistered.

Settings: ``ASTROMESH_REDIS_URL`` (the registry), the key store's ``ASTROMESH_STATE_*`` /
``ASTROMESH_POSTGRES_DSN``, ``ASTROMESH_AGENTS_DIR``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.channels.aws.worker import ChannelWorker

logger = Logger(service="astromesh-ws-connect")
worker = ChannelWorker()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayWebSocketEvent(event).request_context
    logger.append_keys(connection_id=request.connection_id, route=request.route_key)
    if request.route_key == "$connect":
        response = worker.run(lambda: worker.gateway.connect(event))
    elif request.route_key == "$disconnect":
        response = worker.run(lambda: worker.gateway.disconnect(event))
    else:
        raise ValueError(f"ws_connect serves $connect and $disconnect, not {request.route_key!r}")
    logger.info("done", extra={"status": response["statusCode"]})
    return response

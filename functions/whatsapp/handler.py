"""whatsapp: the WhatsApp Cloud API webhook, ``/v1/channels/whatsapp/webhook`` (REST proxy).

- ``GET``: Meta's subscription check; the ``hub.challenge`` back as text/plain, or 403.
- ``POST``: ``X-Hub-Signature-256`` checked over the raw body (base64 bodies decoded first),
  each message id claimed once in Redis, the sender's rate limit applied, then ``200`` at
  once; each accepted message goes to an asynchronous invocation of this same function.
- ``{"astromesh_job": {...}}`` (that invocation): run the agent, send the reply through the
  Graph API, split at 4096 characters.

Settings: ``WHATSAPP_*`` (or a ``channels.yaml``), ``ASTROMESH_REDIS_URL`` for the claims and
rate limits, and the runtime's ``ASTROMESH_AGENTS_DIR`` / ``ASTROMESH_STATE_*``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.channels.aws import webhook
from astromesh.channels.aws.invoke import JOB_KEY
from astromesh.channels.aws.worker import ChannelWorker

CHANNEL = "whatsapp"

logger = Logger(service="astromesh-whatsapp")
worker = ChannelWorker()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if JOB_KEY in event:
        answered = webhook.answer(worker, event[JOB_KEY])
        logger.info("answered", extra=answered)
        return answered
    response = webhook.receive(worker, CHANNEL, event, context)
    logger.info("webhook", extra={"status": response["statusCode"]})
    return response

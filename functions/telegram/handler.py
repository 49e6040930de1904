"""telegram: the Telegram Bot API webhook, ``/v1/channels/telegram/webhook`` (REST proxy).

- ``POST``: ``X-Telegram-Bot-Api-Secret-Token`` compared in constant time, the update id
  claimed once in Redis, the sender's rate limit applied, then ``200`` at once; an accepted
  message goes to an asynchronous invocation of this same function.
- ``{"astromesh_job": {...}}`` (that invocation): run the agent, reply with ``sendMessage``,
  split at 4096 characters.

Settings: ``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_WEBHOOK_SECRET`` (or a ``channels.yaml``),
``ASTROMESH_REDIS_URL``, and the runtime's ``ASTROMESH_AGENTS_DIR`` / ``ASTROMESH_STATE_*``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from astromesh.channels.aws import webhook
from astromesh.channels.aws.invoke import JOB_KEY
from astromesh.channels.aws.worker import ChannelWorker

CHANNEL = "telegram"

logger = Logger(service="astromesh-telegram")
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

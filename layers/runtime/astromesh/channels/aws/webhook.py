"""A messaging webhook as a Lambda function: acknowledge in one invocation, answer in another.

:func:`receive` serves the API Gateway proxy event: ``GET`` is the platform's handshake,
``POST`` is verified, parsed, claimed and rate-limited by the channel's
:class:`~astromesh.channels.messaging.inbox.Inbox`, and each accepted message is handed to
an asynchronous self-invocation (:mod:`.invoke`) before the ``200``. If that hand-off fails
the message's claim is released and the answer is ``503``, so the platform redelivers and
the message is not lost. :func:`answer` is the self-invocation: run the agent, reply.

The event parsing and the messaging adapters are imported by the functions that use them,
so a webhook handler's module load stays light (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from astromesh.channels.aws.invoke import HasFunctionArn, dispatch
from astromesh.errors import AstromeshError

if TYPE_CHECKING:
    from astromesh.channels.aws.worker import ChannelWorker
    from astromesh.channels.messaging.base import Work

logger = logging.getLogger(__name__)

ANSWER_JOB = "channel_answer"


class HandOffFailed(AstromeshError):
    """Accepted work could not be handed to the asynchronous invocation; retry later."""

    code = "hand_off_failed"
    status = 503


def receive(
    worker: ChannelWorker, channel: str, event: Mapping[str, Any], context: HasFunctionArn
) -> dict[str, Any]:
    """Answer one webhook request of ``channel`` (a proxy response, never an exception)."""
    from astromesh.channels.aws.proxy import error_response, json_response, text_response
    from astromesh.channels.aws.proxy import webhook_request as parse_event

    try:
        request = parse_event(event)
        inbox = worker.hub.inbox(channel)
        if request.method == "GET":
            return text_response(200, inbox.adapter.challenge(request))
        accepted = worker.run(lambda: inbox.receive(request))
        for index, work in enumerate(accepted):
            _hand_off(worker, channel, work, context, unsent=accepted[index:])
    except AstromeshError as exc:
        return error_response(exc)
    return json_response(200, {"status": "ok", "accepted": len(accepted)})


def answer(worker: ChannelWorker, job: Mapping[str, Any]) -> dict[str, Any]:
    """The self-invocation: run the agent for one message (or send its notice) and reply."""
    from astromesh.channels.messaging.base import Work

    work = Work.from_dict(job["work"])
    worker.run(lambda: worker.hub.answer(job["channel"], work))
    return {"channel": job["channel"], "message_id": work.message.message_id}


def _hand_off(
    worker: ChannelWorker,
    channel: str,
    work: Work,
    context: HasFunctionArn,
    *,
    unsent: list[Work],
) -> None:
    """Queue ``work``; if that fails, release the claims of ``unsent`` (this work and every
    later one of the delivery, none of which will be queued) before answering 503, so the
    platform's redelivery finds them unclaimed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        dispatch(context, {"kind": ANSWER_JOB, "channel": channel, "work": work.to_dict()})
    except (ClientError, BotoCoreError) as exc:
        logger.error(
            "channel=<%s> | hand-off failed, %d claim(s) released: %s", channel, len(unsent), exc
        )
        inbox = worker.hub.inbox(channel)

        async def release() -> None:
            for item in unsent:
                await inbox.release(item)

        worker.run(release)
        raise HandOffFailed(f"the {channel} message could not be queued; redeliver it") from None

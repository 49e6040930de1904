"""The local server's webhooks: ``GET|POST /v1/channels/{channel}/webhook``.

One pair of routes serves every adapter (WhatsApp's path is the one docs/api.md names). The
``POST`` answers as soon as the delivery is verified and claimed; the agent runs in a task
of this process and the reply goes out when it ends. The hub (adapters, guards, HTTP client)
is built on the first webhook request, from the runtime's environment and agents folder, and
closed with the app (``hub.py``).

In Lambda the process freezes after the response, so a background task would never finish:
there the webhook is served by ``functions/whatsapp`` / ``functions/telegram`` instead, and
these routes answer 501.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from astromesh.channels.errors import NotAvailable
from astromesh.channels.messaging.base import WebhookRequest
from astromesh.channels.messaging.hub import hub_of
from astromesh.channels.openapi import AGENT, errors
from astromesh.channels.schemas import WebhookAccepted
from astromesh.channels.security import services_of

router = APIRouter(tags=["channels"])


async def _webhook_request(request: Request) -> WebhookRequest:
    return WebhookRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=await request.body(),
    )


@router.get(
    "/v1/channels/{channel}/webhook",
    response_class=PlainTextResponse,
    summary="Platform subscription handshake (WhatsApp: hub.challenge)",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **errors(AGENT, 403),
    },
)
async def webhook_handshake(channel: str, request: Request) -> PlainTextResponse:
    inbox = hub_of(request).inbox(channel)
    return PlainTextResponse(inbox.adapter.challenge(await _webhook_request(request)))


@router.post(
    "/v1/channels/{channel}/webhook",
    summary="A platform's message delivery",
    response_model=WebhookAccepted,
    responses=errors(AGENT, 400, 401, 403, 413, 501, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The platform's payload, as it signed it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def webhook_delivery(channel: str, request: Request) -> dict[str, Any]:
    """Verify and claim the delivery's messages, answer 200, run the agent afterwards."""
    if not services_of(request).settings.background_runs:
        raise NotAvailable(
            "channel_webhook_unavailable",
            f"in AWS the {channel} webhook is served by its own function (functions/{channel})",
        )
    hub = hub_of(request)
    inbox = hub.inbox(channel)
    work = await inbox.receive(await _webhook_request(request))
    for item in work:
        hub.spawn(channel, item)
    return {"status": "ok", "accepted": len(work)}

"""WhatsApp (Meta Cloud API): the webhook handshake, ``X-Hub-Signature-256``, Graph API replies.

- ``GET`` answers Meta's subscription check: ``hub.mode=subscribe`` and the configured
  ``hub.verify_token`` give back ``hub.challenge`` as plain text; anything else is 403.
- ``POST`` deliveries carry ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the
  raw body with the app secret, compared in constant time (missing: 401, wrong: 403).
- A delivery is ``entry[].changes[].value`` with ``messages`` and/or ``statuses``. Text, and
  the text of a tapped button or list item, start a run. Images, audio, video, documents,
  stickers, locations and contacts are ``media``: the sender is told, once per message, that
  only text is understood (a caption alone would be answered without its picture, which
  misleads more than it helps). Reactions and delivery statuses (sent, delivered, read,
  failed) are acknowledged and dropped. Items for another phone number of the same Meta app
  are dropped too.
- Replies: ``POST {api_url}/{phone_number_id}/messages`` with the access token, at most 4096
  characters each (the base class splits).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, ClassVar

import httpx

from astromesh.channels.errors import BadRequest, Forbidden
from astromesh.channels.messaging.base import (
    ChannelAdapter,
    InboundMessage,
    MessageKind,
    SendError,
    WebhookRequest,
    require_header,
    same_secret,
)
from astromesh.channels.messaging.config import WHATSAPP_API_URL, WhatsAppSettings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
_MEDIA_TYPES = frozenset(
    {"image", "audio", "video", "document", "sticker", "location", "contacts", "voice"}
)


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body`` (also for tests and events)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class WhatsAppAdapter(ChannelAdapter):
    name: ClassVar[str] = "whatsapp"
    max_chars: ClassVar[int] = 4096

    def __init__(self, settings: WhatsAppSettings, http: httpx.AsyncClient) -> None:
        super().__init__(http)
        self.settings = settings
        self.api_url = (settings.api_url or WHATSAPP_API_URL).rstrip("/")

    def challenge(self, request: WebhookRequest) -> str:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token") or ""
        challenge = request.query.get("hub.challenge")
        if mode != "subscribe" or not challenge:
            raise Forbidden("not a WhatsApp subscription request")
        if not same_secret(token, self.settings.verify_token):
            raise Forbidden("the verify token does not match")
        return challenge

    def verify(self, request: WebhookRequest) -> None:
        given = require_header(request, SIGNATURE_HEADER)
        expected = sign(request.body, self.settings.app_secret)
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise Forbidden(f"the {SIGNATURE_HEADER} signature does not match the body")

    def parse(self, request: WebhookRequest) -> list[InboundMessage]:
        try:
            payload = json.loads(request.body)
        except ValueError as exc:
            raise BadRequest(f"the delivery is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise BadRequest("the delivery is not a JSON object")
        found: list[InboundMessage] = []
        for value in _values(payload):
            number = (value.get("metadata") or {}).get("phone_number_id")
            if number is not None and str(number) != self.settings.phone_number_id:
                logger.info("phone_number_id=<%s> | delivery for another number ignored", number)
                continue
            found.extend(self._message(item) for item in value.get("messages") or [])
            found.extend(self._status(item) for item in value.get("statuses") or [])
        return found

    async def _send_one(self, to: str, text: str) -> None:
        response = await self.http.post(
            f"{self.api_url}/{self.settings.phone_number_id}/messages",
            headers={"Authorization": f"Bearer {self.settings.access_token}"},
            json={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "text",
                "text": {"preview_url": False, "body": text},
            },
        )
        if response.status_code >= 300:
            raise SendError(self.name, response.status_code, response.text)

    def _message(self, item: dict[str, Any]) -> InboundMessage:
        kind, text, detail = _classify(item)
        sender = str(item.get("from", ""))
        return InboundMessage(
            self.name, str(item.get("id", "")), sender, sender, kind, text, detail
        )

    def _status(self, item: dict[str, Any]) -> InboundMessage:
        recipient = str(item.get("recipient_id", ""))
        return InboundMessage(
            self.name,
            f"status:{item.get('id', '')}:{item.get('status', '')}",
            recipient,
            recipient,
            "status",
            detail=str(item.get("status", "")),
        )


def _values(payload: dict[str, Any]) -> list[dict[str, Any]]:
    values = []
    for entry in payload.get("entry") or []:
        for change in (entry or {}).get("changes") or []:
            value = (change or {}).get("value")
            if isinstance(value, dict):
                values.append(value)
    return values


def _classify(item: dict[str, Any]) -> tuple[MessageKind, str, str]:
    """``(kind, text, detail)`` of one ``messages[]`` item."""
    kind = str(item.get("type", ""))
    if kind == "text":
        return "text", str((item.get("text") or {}).get("body", "")), kind
    if kind == "button":
        return "text", str((item.get("button") or {}).get("text", "")), kind
    if kind == "interactive":
        interactive = item.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return "text", str(reply.get("title", "")), kind
    if kind == "reaction":
        return "reaction", "", str((item.get("reaction") or {}).get("emoji", ""))
    if kind in _MEDIA_TYPES:
        return "media", "", kind
    return "other", "", kind or "unknown"

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
- A signed delivery whose parts have the wrong shape (``entry`` not a list, a message
  without ``id`` or with a ``from`` that is not a WhatsApp id, ``text`` not an object...) is
  still acknowledged: those parts are ``malformed`` items, counted and logged with the
  reason, and the well-formed rest is answered. Only a body that is not a JSON object is
  refused (400).
- Replies: ``POST {api_url}/{phone_number_id}/messages`` with the access token, at most 4096
  characters each (the base class splits).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx

from astromesh.channels.errors import Forbidden
from astromesh.channels.messaging.base import (
    ChannelAdapter,
    InboundMessage,
    MessageKind,
    SendError,
    WebhookRequest,
    json_object,
    require_header,
    same_secret,
    scalar_text,
)
from astromesh.channels.messaging.config import WHATSAPP_API_URL, WhatsAppSettings
from astromesh.text_boundary import repair

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
        payload = json_object(request.body, "delivery")
        found: list[InboundMessage] = []
        for where, value in _values(payload, found):
            metadata = value.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                # Whose number it was for is unknown: answering could speak for another one.
                found.append(_malformed(f"shape: {where}.metadata is not an object"))
                continue
            number = (metadata or {}).get("phone_number_id")
            if number is not None and scalar_text(number) != self.settings.phone_number_id:
                logger.info(
                    "phone_number_id=<%s> | delivery for another number ignored",
                    repair(str(number))[:64],
                )
                continue
            for item_where, item in _items(value, "messages", where, found):
                found.append(self._message(item, item_where))
            for _, item in _items(value, "statuses", where, found):
                found.append(self._status(item))
        return found

    def valid_recipient(self, to: str) -> bool:
        """A WhatsApp id: the sender's phone number (digits), or another id Meta assigns
        (letters, digits and ``. _ + -``, no spaces); never empty."""
        return bool(_WA_ID.fullmatch(to))

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

    def _message(self, item: dict[str, Any], where: str) -> InboundMessage:
        message_id = scalar_text(item.get("id"))
        sender = scalar_text(item.get("from"))
        if not message_id:
            return _malformed(f"no_id: {where} has no id", sender=sender)
        if not self.valid_recipient(sender):
            return _malformed(
                f"no_recipient: {where}.from is not a WhatsApp id", message_id=message_id
            )
        kind, text, detail = _classify(item, where)
        return InboundMessage(self.name, message_id, sender, sender, kind, text, detail)

    def _status(self, item: dict[str, Any]) -> InboundMessage:
        recipient = scalar_text(item.get("recipient_id"))
        status = scalar_text(item.get("status"))
        return InboundMessage(
            self.name,
            f"status:{scalar_text(item.get('id'))}:{status}",
            recipient,
            recipient,
            "status",
            detail=status,
        )


_WA_ID = re.compile(r"[A-Za-z0-9+][A-Za-z0-9._+-]{0,63}")


def _malformed(detail: str, *, message_id: str = "", sender: str = "") -> InboundMessage:
    return InboundMessage(
        WhatsAppAdapter.name, message_id, sender, sender, "malformed", detail=detail
    )


def _values(
    payload: dict[str, Any], found: list[InboundMessage]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, value)`` of every ``entry[].changes[].value``; a part of the wrong shape is
    a malformed item in ``found`` (so it is counted), and the rest is still read."""
    for i, entry in _listed(payload, "entry", "", found):
        if not isinstance(entry, dict):
            found.append(_malformed(f"shape: entry[{i}] is not an object"))
            continue
        for j, change in _listed(entry, "changes", f"entry[{i}]", found):
            where = f"entry[{i}].changes[{j}]"
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                yield f"{where}.value", value
            elif not isinstance(change, dict) or value is not None:
                found.append(_malformed(f"shape: {where} has no value object"))


def _items(
    value: dict[str, Any], key: str, where: str, found: list[InboundMessage]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, item)`` of the objects in ``value[key]``; other items are malformed."""
    for i, item in _listed(value, key, where, found):
        if isinstance(item, dict):
            yield f"{where}.{key}[{i}]", item
        else:
            found.append(_malformed(f"shape: {where}.{key}[{i}] is not an object"))


def _listed(
    parent: dict[str, Any], key: str, where: str, found: list[InboundMessage]
) -> Iterator[tuple[int, Any]]:
    items = parent.get(key)
    if items is None:
        return
    if not isinstance(items, list):
        path = f"{where}.{key}" if where else key
        found.append(_malformed(f"shape: {path} is not a list"))
        return
    yield from enumerate(items)


def _field(item: dict[str, Any], key: str, name: str) -> str | None:
    """``item[key][name]`` when it is a string; ``None`` when anything on the way is not."""
    holder = item.get(key)
    value = holder.get(name) if isinstance(holder, dict) else None
    return value if isinstance(value, str) else None


def _classify(item: dict[str, Any], where: str) -> tuple[MessageKind, str, str]:
    """``(kind, text, detail)`` of one ``messages[]`` item."""
    kind = scalar_text(item.get("type"))
    if kind in ("text", "button"):
        text = _field(item, kind, "body" if kind == "text" else "text")
        if text is None:
            body = "body" if kind == "text" else "text"
            return "malformed", "", f"shape: {where}.{kind}.{body} is not a string"
        return "text", text, kind
    if kind == "interactive":
        interactive = item.get("interactive")
        replies = interactive if isinstance(interactive, dict) else {}
        reply = replies.get("button_reply") or replies.get("list_reply")
        title = reply.get("title") if isinstance(reply, dict) else None
        if not isinstance(title, str):
            return "malformed", "", f"shape: {where}.interactive has no reply title"
        return "text", title, kind
    if kind == "reaction":
        return "reaction", "", _field(item, "reaction", "emoji") or ""
    if kind in _MEDIA_TYPES:
        return "media", "", kind
    return "other", "", kind or "unknown"

"""Telegram (Bot API webhook): the secret-token header, updates, ``sendMessage`` replies.

- Telegram sends the ``secret_token`` given to ``setWebhook`` in
  ``X-Telegram-Bot-Api-Secret-Token`` on every delivery; it is compared in constant time
  with the configured ``webhook_secret`` (missing: 401, wrong: 403).
- One delivery is one update; ``update_id`` is the exactly-once key. A ``message`` with
  text starts a run; one with a photo, voice note, document, sticker... is ``media`` (the
  sender is told only text is understood). Edited messages, channel posts, callback queries,
  membership changes and messages from bots are acknowledged and dropped.
- The conversation (session) is per user; the reply goes to the chat the message came from.
- Replies: ``POST {api_url}/bot{token}/sendMessage`` with ``chat_id`` and ``text``, at most
  4096 characters each (the base class splits). The URL holds the bot token, so it is never
  logged.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

from astromesh.channels.errors import BadRequest, Forbidden
from astromesh.channels.messaging.base import (
    ChannelAdapter,
    InboundMessage,
    SendError,
    WebhookRequest,
    require_header,
    same_secret,
)
from astromesh.channels.messaging.config import TELEGRAM_API_URL, TelegramSettings

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramAdapter(ChannelAdapter):
    name: ClassVar[str] = "telegram"
    max_chars: ClassVar[int] = 4096

    def __init__(self, settings: TelegramSettings, http: httpx.AsyncClient) -> None:
        super().__init__(http)
        self.settings = settings
        self.api_url = (settings.api_url or TELEGRAM_API_URL).rstrip("/")

    def verify(self, request: WebhookRequest) -> None:
        given = require_header(request, SECRET_HEADER)
        if not same_secret(given, self.settings.webhook_secret):
            raise Forbidden(f"the {SECRET_HEADER} header does not match")

    def parse(self, request: WebhookRequest) -> list[InboundMessage]:
        try:
            update = json.loads(request.body)
        except ValueError as exc:
            raise BadRequest(f"the update is not JSON: {exc}") from None
        if not isinstance(update, dict) or "update_id" not in update:
            raise BadRequest("the update has no update_id")
        update_id = str(update["update_id"])
        message = update.get("message")
        if not isinstance(message, dict):
            other = next((key for key in update if key != "update_id"), "unknown")
            return [InboundMessage(self.name, update_id, "", "", "other", detail=other)]
        sender = message.get("from") or {}
        chat = str((message.get("chat") or {}).get("id", ""))
        user = str(sender.get("id", chat))
        if sender.get("is_bot"):
            return [InboundMessage(self.name, update_id, user, chat, "other", detail="from_bot")]
        text = message.get("text")
        if isinstance(text, str):
            return [InboundMessage(self.name, update_id, user, chat, "text", text, "text")]
        return [InboundMessage(self.name, update_id, user, chat, "media", detail=_content(message))]

    async def _send_one(self, to: str, text: str) -> None:
        response = await self.http.post(
            f"{self.api_url}/bot{self.settings.bot_token}/sendMessage",
            json={"chat_id": to, "text": text},
        )
        answer: Any = None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 300 or not (isinstance(answer, dict) and answer.get("ok")):
            raise SendError(self.name, response.status_code, response.text)


_CONTENT_KEYS = (
    "photo",
    "voice",
    "audio",
    "video",
    "video_note",
    "document",
    "sticker",
    "animation",
    "location",
    "contact",
    "poll",
)


def _content(message: dict[str, Any]) -> str:
    return next((key for key in _CONTENT_KEYS if key in message), "unknown")

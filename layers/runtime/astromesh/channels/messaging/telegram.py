"""Telegram (Bot API webhook): the secret-token header, updates, ``sendMessage`` replies.

- Telegram sends the ``secret_token`` given to ``setWebhook`` in
  ``X-Telegram-Bot-Api-Secret-Token`` on every delivery; it is compared in constant time
  with the configured ``webhook_secret`` (missing: 401, wrong: 403).
- One delivery is one update; ``update_id`` is the exactly-once key. A ``message`` with
  text starts a run; one with a photo, voice note, document, sticker... is ``media`` (the
  sender is told only text is understood). Edited messages, channel posts, callback queries,
  membership changes and messages from bots are acknowledged and dropped.
- The conversation (session) is per user; the reply goes to the chat the message came from.
- A verified update of the wrong shape (``message``, ``from`` or ``chat`` not objects, no
  chat id to answer, ``text`` not a string) is acknowledged as a ``malformed`` item, counted
  and logged with the reason; nothing is ever sent to an empty or invalid chat id. Only an
  update that is not a JSON object with an ``update_id`` is refused (400).
- Replies: ``POST {api_url}/bot{token}/sendMessage`` with ``chat_id`` and ``text``, at most
  4096 characters each (the base class splits). The URL holds the bot token, so it is never
  logged.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx

from astromesh.channels.errors import BadRequest, Forbidden
from astromesh.channels.messaging.base import (
    ChannelAdapter,
    InboundMessage,
    SendError,
    WebhookRequest,
    json_object,
    require_header,
    same_secret,
    scalar_text,
)
from astromesh.channels.messaging.config import TELEGRAM_API_URL, TelegramSettings

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_CHAT_ID = re.compile(r"-?[0-9]{1,32}")


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
        update = json_object(request.body, "update")
        update_id = scalar_text(update.get("update_id"))
        if not update_id:
            raise BadRequest("the update has no update_id (an integer)")
        message = update.get("message")
        if message is None:
            other = next((key for key in update if key != "update_id"), "unknown")
            return [InboundMessage(self.name, update_id, "", "", "other", detail=other)]
        if not isinstance(message, dict):
            return [self._malformed(update_id, "shape: message is not an object")]
        chat = message.get("chat")
        chat_id = scalar_text(chat.get("id")) if isinstance(chat, dict) else ""
        if not self.valid_recipient(chat_id):
            return [self._malformed(update_id, "no_recipient: message.chat has no chat id")]
        sender = message.get("from", {})
        if not isinstance(sender, dict):
            return [self._malformed(update_id, "shape: message.from is not an object")]
        # A message without a sender (a channel post) is the chat's: its id is the user's.
        user = scalar_text(sender.get("id", chat_id))
        if not user:
            return [self._malformed(update_id, "shape: message.from.id is not an integer")]
        if sender.get("is_bot") is True:
            return [InboundMessage(self.name, update_id, user, chat_id, "other", detail="from_bot")]
        text = message.get("text")
        if isinstance(text, str):
            return [InboundMessage(self.name, update_id, user, chat_id, "text", text, "text")]
        if text is not None:
            return [self._malformed(update_id, "shape: message.text is not a string")]
        kind = _content(message)
        return [InboundMessage(self.name, update_id, user, chat_id, "media", detail=kind)]

    def valid_recipient(self, to: str) -> bool:
        """A chat id: an integer (negative for groups)."""
        return bool(_CHAT_ID.fullmatch(to))

    def _malformed(self, update_id: str, detail: str) -> InboundMessage:
        return InboundMessage(self.name, update_id, "", "", "malformed", detail=detail)

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

"""Messaging platforms for tests: a fake Graph API / Bot API on 127.0.0.1, and payloads.

:class:`PlatformServer` is a real HTTP server that records every reply the adapters post
(path, headers, JSON body) and answers the way both platforms do on success (Meta's
``messages`` list and Telegram's ``ok``), or with a queued error status::

    with PlatformServer() as graph:
        env = {"WHATSAPP_API_URL": graph.url, ...}
        ...
        graph.wait_for(1)
        assert graph.texts() == ["Hello!"]

The payload builders write what Meta and Telegram send, signed where the platform signs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from astromesh.channels.messaging.whatsapp import sign

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
PHONE_NUMBER_ID = "100200300"
BOT_TOKEN = "123456:test-bot-token"
WEBHOOK_SECRET = "test-webhook-secret"

SAMPLE_EVENTS_ENV = {
    "WHATSAPP_VERIFY_TOKEN": "sample-events-verify-token",
    "WHATSAPP_APP_SECRET": "sample-events-app-secret",
    "WHATSAPP_ACCESS_TOKEN": "sample-events-access-token",
    "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    "TELEGRAM_BOT_TOKEN": "5550001:sample-events-bot-token",
    "TELEGRAM_WEBHOOK_SECRET": "sample-events-webhook-secret",
}
"""The channel secrets the sample events in ``events/whatsapp`` and ``events/telegram`` were
made with (signatures, secret tokens)."""


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """The message text, whichever platform it was posted to."""
        if "text" in self.body and isinstance(self.body["text"], dict):
            return str(self.body["text"]["body"])
        return str(self.body.get("text", ""))


class PlatformServer:
    """Records posted replies; answers 200 with a success body unless a status is queued."""

    def __init__(self) -> None:
        self.posts: list[Posted] = []
        self._statuses: deque[int] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def texts(self) -> list[str]:
        return [post.text for post in self.posts]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Posted]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.posts)

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.posts.append(
                        Posted(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = server._statuses.popleft() if server._statuses else 200
                answer: dict[str, Any] = (
                    {"ok": True, "messaging_product": "whatsapp", "messages": [{"id": "wamid.r"}]}
                    if status == 200
                    else {"ok": False, "error": {"message": "scripted failure"}}
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def whatsapp_env(api_url: str, **extra: str) -> dict[str, str]:
    """The ``WHATSAPP_*`` variables of a test deployment."""
    return {
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_API_URL": api_url,
        **extra,
    }


def telegram_env(api_url: str, **extra: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELEGRAM_API_URL": api_url,
        **extra,
    }


def whatsapp_delivery(
    *messages: dict[str, Any], statuses: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Meta's webhook payload holding ``messages`` (see :func:`wa_text`) and ``statuses``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
    }
    if messages:
        value["contacts"] = [
            {"profile": {"name": "Test User"}, "wa_id": m["from"]} for m in messages
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA_ID", "changes": [{"value": value, "field": "messages"}]}],
    }


def wa_text(text: str, *, message_id: str = "wamid.A1", sender: str = "15551234567") -> dict:
    return {
        "from": sender,
        "id": message_id,
        "timestamp": "1767225600",
        "type": "text",
        "text": {"body": text},
    }


def wa_image(*, message_id: str = "wamid.IMG", sender: str = "15551234567") -> dict:
    return {
        "from": sender,
        "id": message_id,
        "timestamp": "1767225600",
        "type": "image",
        "image": {"caption": "look", "mime_type": "image/jpeg", "id": "MEDIA_ID"},
    }


def wa_status(status: str = "delivered", *, message_id: str = "wamid.OUT") -> dict:
    return {
        "id": message_id,
        "status": status,
        "timestamp": "1767225601",
        "recipient_id": "15551234567",
    }


def signed(payload: dict[str, Any], secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """The raw body and the headers Meta would send for ``payload``."""
    body = json.dumps(payload).encode()
    return body, {"content-type": "application/json", "x-hub-signature-256": sign(body, secret)}


def telegram_update(
    text: str | None = "hello", *, update_id: int = 1001, user: int = 42, **message: Any
) -> dict[str, Any]:
    """A ``message`` update; ``text=None`` with e.g. ``photo=[...]`` makes a media one."""
    body: dict[str, Any] = {
        "message_id": update_id % 1000,
        "from": {"id": user, "is_bot": False, "first_name": "Test"},
        "chat": {"id": user, "type": "private"},
        "date": 1767225600,
        **message,
    }
    if text is not None:
        body["text"] = text
    return {"update_id": update_id, "message": body}


def telegram_headers(secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret}

"""Messaging channels (WhatsApp, Telegram): one adapter interface, one shared flow.

A new channel is an adapter module here (``verify``, ``parse``, ``_send_one``), one line in
:data:`~astromesh.channels.messaging.inbox.ADAPTERS`, its settings in ``config.py`` and a
thin handler in ``functions/<channel>/``.

The webhook routes (FastAPI) are in ``routes.py``, imported by the app only: the channel
Lambdas use the adapters and the inbox without the web framework. The names below are
imported on first use (the package's ``__getattr__``), so the app's routes do not load the
inbox and its HTTP client before a webhook arrives (docs/performance.md, "Lazy imports").
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.channels.messaging.base import (
        ChannelAdapter,
        InboundMessage,
        WebhookRequest,
        Work,
    )
    from astromesh.channels.messaging.inbox import ADAPTERS, ChannelHub, Inbox

_EXPORTS = {
    "ADAPTERS": "inbox",
    "ChannelAdapter": "base",
    "ChannelHub": "inbox",
    "InboundMessage": "base",
    "Inbox": "inbox",
    "WebhookRequest": "base",
    "Work": "base",
}

__all__ = [
    "ADAPTERS",
    "ChannelAdapter",
    "ChannelHub",
    "InboundMessage",
    "Inbox",
    "WebhookRequest",
    "Work",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Messaging channels (WhatsApp, Telegram): one adapter interface, one shared flow.

A new channel is an adapter module here (``verify``, ``parse``, ``_send_one``), one line in
:data:`~astromesh.channels.messaging.inbox.ADAPTERS`, its settings in ``config.py`` and a
thin handler in ``functions/<channel>/``.
"""

from astromesh.channels.messaging.base import ChannelAdapter, InboundMessage, WebhookRequest, Work
from astromesh.channels.messaging.inbox import ADAPTERS, ChannelHub, Inbox

# The webhook routes (FastAPI) are in ``routes.py``, imported by the app only: the channel
# Lambdas use the adapters and the inbox without the web framework.

__all__ = [
    "ADAPTERS",
    "ChannelAdapter",
    "ChannelHub",
    "InboundMessage",
    "Inbox",
    "WebhookRequest",
    "Work",
]

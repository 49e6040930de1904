"""The channel adapter interface: verify a webhook request, parse it, send replies.

A messaging channel (WhatsApp, Telegram, Slack...) differs from the others in three places
only: how a delivery proves it comes from the platform, how the platform's payload names
senders and messages, and how a reply is posted back. :class:`ChannelAdapter` is exactly
those three, so a new channel is one module here plus one thin Lambda handler; everything
else (exactly-once handling, rate limits, running the agent, splitting long replies,
answering fast and working in the background) is written once in
:mod:`astromesh.channels.messaging.inbox`.

Requests are plain :class:`WebhookRequest` values (method, lower-cased headers, query, the
raw body bytes) so the same adapter serves the local FastAPI route and an API Gateway proxy
event; signatures are computed over the raw bytes, never over re-serialised JSON.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from astromesh.channels.errors import BadRequest, Unauthorized
from astromesh.channels.messaging.text import split_text
from astromesh.errors import NotFoundError
from astromesh.text_boundary import repair

if TYPE_CHECKING:
    import httpx

MessageKind = Literal["text", "media", "status", "reaction", "other", "malformed"]
"""What a parsed item is. Only ``text`` starts a run; ``media`` gets a canned reply;
``status``, ``reaction`` and ``other`` are acknowledged and dropped; ``malformed`` (an item
whose shape is wrong: no id, nobody to answer, a field of the wrong type) is acknowledged,
counted and logged with the reason in ``detail`` (``<reason>: <where and what>``)."""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A webhook delivery as it reached us, independent of FastAPI or API Gateway."""

    method: str
    headers: Mapping[str, str]
    """Names lower-cased."""
    query: Mapping[str, str]
    body: bytes
    """The raw body: what the platform signed."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One item of a delivery, in the shape every channel shares.

    Attributes:
        channel: the adapter's name (``whatsapp``).
        message_id: the platform's id of this item, the key of exactly-once handling.
        sender: who sent it (a WhatsApp ``wa_id``, a Telegram user id): the rate-limit key
            and, prefixed with the channel, the session id.
        reply_to: where the reply goes (the ``wa_id``; a Telegram chat id).
        kind: see :data:`MessageKind`.
        text: the text of a ``text`` message (or a media caption).
        detail: a short description for logs (a status value, a media type).
    """

    channel: str
    message_id: str
    sender: str
    reply_to: str
    kind: MessageKind
    text: str = ""
    detail: str = ""

    @property
    def session_id(self) -> str:
        """One conversation per sender and channel (``whatsapp:<wa_id>``)."""
        return f"{self.channel}:{self.sender}"

    @property
    def reason(self) -> str:
        """A malformed item's short reason (``shape``, ``no_id``, ``no_recipient``)."""
        return self.detail.partition(":")[0]

    def repaired(self) -> InboundMessage:
        """This item with its text made valid (:mod:`astromesh.text_boundary`): the
        platform cannot be told, and the message must still be answered."""
        fields = ("message_id", "sender", "reply_to", "text", "detail")
        changes = {name: repair(getattr(self, name)) for name in fields}
        if all(changes[name] is getattr(self, name) for name in fields):
            return self
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InboundMessage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class Work:
    """What to do for one accepted message, JSON-serialisable so it can cross a Lambda
    self-invocation: run the agent on ``message``, or send ``notice`` instead of a run."""

    message: InboundMessage
    notice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message.to_dict(), "notice": self.notice}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Work:
        return cls(InboundMessage.from_dict(data["message"]), data.get("notice"))


@dataclass
class SendError(Exception):
    """The platform refused a reply (logged; never retried blindly: a POST that reached
    the platform may have been delivered)."""

    channel: str
    status: int
    detail: str = field(default="")

    def __str__(self) -> str:
        return f"{self.channel} answered {self.status} to a reply: {self.detail[:300]}"


class ChannelAdapter(ABC):
    """One messaging platform. Subclasses set :attr:`name` and :attr:`max_chars` and fill
    in :meth:`verify`, :meth:`parse` and :meth:`_send_one`; :meth:`challenge` only when the
    platform has a GET handshake."""

    name: ClassVar[str]
    max_chars: ClassVar[int]
    """The platform's limit on one message; longer replies are split."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    def challenge(self, request: WebhookRequest) -> str:
        """Answer the platform's subscription handshake (a GET); the text to return.

        Raises:
            Forbidden: the handshake is not ours.
            NotFoundError: this platform has no handshake (nothing is served there).
        """
        raise NotFoundError(f"the {self.name} webhook has no GET handshake; it takes POST only")

    @abstractmethod
    def verify(self, request: WebhookRequest) -> None:
        """Check that a delivery comes from the platform.

        Raises:
            Unauthorized: the proof (signature, secret header) is missing.
            Forbidden: the proof is wrong.
        """

    @abstractmethod
    def parse(self, request: WebhookRequest) -> list[InboundMessage]:
        """The items of a verified delivery, in order; an item of the wrong shape is a
        ``malformed`` item (acknowledged with the reason), never an exception.

        Raises:
            BadRequest: the body is not a JSON object (or nests too deeply to be read).
        """

    def valid_recipient(self, to: str) -> bool:
        """Whether a reply can be addressed to ``to`` (nothing is ever sent elsewhere)."""
        return bool(to)

    async def send(self, to: str, text: str) -> int:
        """Send ``text`` to ``to``, split at :attr:`max_chars` on sentence or word
        boundaries; return how many messages were posted.

        Raises:
            SendError: the platform refused one part (the later parts are not sent), or
                ``to`` is not an address of this platform (nothing was sent).
            httpx.HTTPError: the platform could not be reached.
        """
        if not self.valid_recipient(to):
            raise SendError(self.name, 0, f"not sent: {to!r} is not a {self.name} recipient")
        parts = split_text(repair(text), self.max_chars)
        for part in parts:
            await self._send_one(to, part)
        return len(parts)

    @abstractmethod
    async def _send_one(self, to: str, text: str) -> None:
        """Post one message of at most :attr:`max_chars` characters."""


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """A delivery's body as a JSON object. Bytes that are not UTF-8 become U+FFFD rather
    than failing it: the platform signed them, and cannot be told.

    Raises:
        BadRequest: the body is not JSON, nests too deeply to be read, or is not an object.
    """
    try:
        data = json.loads(body.decode("utf-8-sig", "replace"))
    except ValueError as exc:
        raise BadRequest(f"the {what} is not JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(f"the {what} nests too deeply to be read") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the {what} is not a JSON object")
    return data


def scalar_text(value: Any) -> str:
    """A platform id as text: strings as they are, integers written out, anything else
    (objects, lists, booleans, null) empty, so it is refused as missing."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (as bytes, so non-ASCII input is fine)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def require_header(request: WebhookRequest, name: str) -> str:
    """The header's value.

    Raises:
        Unauthorized: it is missing or empty.
    """
    value = request.header(name)
    if not value:
        raise Unauthorized(f"missing {name} header")
    return value

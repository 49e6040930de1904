"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for send_email."""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.message import Message
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 OK"


class SMTPReceiver:
    """``with SMTPReceiver() as smtp: ... smtp.port ... smtp.messages``"""

    def __init__(self) -> None:
        self._handler = _Keep()
        with socket.socket() as sock:  # aiosmtpd checks readiness by connecting: no port 0
            sock.bind(("127.0.0.1", 0))
            self._port = int(sock.getsockname()[1])
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self._port)

    @property
    def messages(self) -> list[tuple[str, list[str], Message]]:
        return self._handler.messages

    @property
    def port(self) -> int:
        return self._port

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()

"""``send_slack`` and ``send_email``: upstream's notification builtins, on the operator's accounts.

Both send through something the operator configures, and are refused with a message naming
exactly what is missing when it is not there (the agent still loads; the call tells the model
it cannot send):

- ``send_slack`` (``message``, ``channel``) posts ``{"text", "channel"}`` to a Slack incoming
  webhook: ``config.webhook_url``, else the ``SLACK_WEBHOOK_URL`` environment variable. The
  URL goes through the SSRF guard like every network builtin's (no redirects followed).
- ``send_email`` (``to``, ``subject``, ``body``) sends over SMTP: ``config.smtp_host`` /
  ``smtp_port`` (587) / ``smtp_user`` / ``smtp_password`` / ``from_address`` / ``starttls``
  (true), each else from ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USER``, ``SMTP_PASSWORD``,
  ``SMTP_FROM``. Recipients are checked (one address, no header injection) and the body
  bounded.

The environment they read is the agent's (:meth:`Grants.tool_env
<astromesh.security.grants.Grants.tool_env>`): a registered agent sees only the variables the
policy's ``secret_envs`` lists, and may not name an SMTP host itself (the registration check
refuses ``config.smtp_host``), so it can only send through the operator's server.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from pydantic import Field

from astromesh.errors import ToolError
from astromesh.tools.base import Tool, ToolContext
from astromesh.tools.builtin._common import BuiltinConfig
from astromesh.tools.builtin._network import GuardedHTTP, NetworkConfig
from astromesh.tools.ssrf import SSRFGuard

SLACK_URL_ENV = "SLACK_WEBHOOK_URL"
SMTP_ENVS = {
    "smtp_host": "SMTP_HOST",
    "smtp_port": "SMTP_PORT",
    "smtp_user": "SMTP_USER",
    "smtp_password": "SMTP_PASSWORD",
    "from_address": "SMTP_FROM",
}
MAX_EMAIL_BODY = 100_000


class NotConfigured(ToolError):
    """The operator has not configured what this builtin sends through."""


class SendSlackConfig(NetworkConfig):
    webhook_url: str | None = None


class SendSlackTool(Tool):
    """Posts a message to a Slack incoming webhook."""

    def __init__(
        self,
        name: str = "send_slack",
        description: str = "",
        *,
        config: SendSlackConfig | None = None,
        env: Mapping[str, str] | None = None,
        guard: SSRFGuard | None = None,
    ) -> None:
        self.config = config or SendSlackConfig()
        self.webhook_url = self.config.webhook_url or (env or {}).get(SLACK_URL_ENV)
        guard = guard or SSRFGuard(allow_private_network=self.config.allow_private_network)
        self.http = GuardedHTTP(
            guard, self.config, user_agent="astromesh-send-slack", follow_redirects=False
        )
        super().__init__(
            name=name,
            description=description or "Send a message to Slack.",
            parameters={
                "type": "object",
                "properties": {
                    "message": {"type": "string", "maxLength": 40_000},
                    "channel": {"type": "string"},
                },
                "required": ["message"],
                "additionalProperties": False,
            },
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        if not self.webhook_url:
            raise NotConfigured(
                "send_slack is not configured: it needs a Slack incoming webhook URL in the"
                f" tool's config.webhook_url or the {SLACK_URL_ENV} environment variable"
            )
        payload: dict[str, Any] = {"text": arguments["message"]}
        if arguments.get("channel"):
            payload["channel"] = arguments["channel"]
        response = await self.http.fetch("POST", self.webhook_url, json=payload)
        if response.status_code >= 400:
            raise ToolError(f"Slack answered HTTP {response.status_code}: {response.text[:300]}")
        return {"sent": True, "response": response.text[:1000]}


class SendEmailConfig(BuiltinConfig):
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    from_address: str | None = None
    starttls: bool = True
    timeout_seconds: float = Field(15.0, gt=0, le=120)


def _single_address(value: str, field: str) -> str:
    """``value`` if it is one plain address; header injection and lists are refused."""
    if any(c in value for c in "\r\n,;"):
        raise ToolError(f"{field}: give one address, without line breaks, commas or semicolons")
    _, address = parseaddr(value)
    if "@" not in address or " " in address:
        raise ToolError(f"{field}: {value!r} is not an email address")
    return value.strip()


class SendEmailTool(Tool):
    """Sends one plain-text email over the operator's SMTP server."""

    def __init__(
        self,
        name: str = "send_email",
        description: str = "",
        *,
        config: SendEmailConfig | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or SendEmailConfig()
        env = env or {}
        settings = {
            key: getattr(self.config, key) or env.get(variable)
            for key, variable in SMTP_ENVS.items()
        }
        self.host: str | None = settings["smtp_host"]
        self.port = int(settings["smtp_port"] or 587)
        self.user: str | None = settings["smtp_user"]
        self._password: str | None = settings["smtp_password"]
        self.from_address: str | None = settings["from_address"] or self.user
        super().__init__(
            name=name,
            description=description or "Send an email.",
            parameters={
                "type": "object",
                "properties": {
                    "to": {"type": "string", "description": "One recipient address"},
                    "subject": {"type": "string", "maxLength": 500},
                    "body": {"type": "string", "maxLength": MAX_EMAIL_BODY},
                },
                "required": ["to", "subject", "body"],
                "additionalProperties": False,
            },
        )

    def _message(self, arguments: dict[str, Any]) -> EmailMessage:
        if not self.host or not self.from_address:
            missing = " and ".join(
                f"config.{key} or {SMTP_ENVS[key]}"
                for key, value in (("smtp_host", self.host), ("from_address", self.from_address))
                if not value
            )
            raise NotConfigured(f"send_email is not configured: it needs {missing}")
        subject = str(arguments["subject"])
        if "\r" in subject or "\n" in subject:
            raise ToolError("subject: no line breaks")
        message = EmailMessage()
        message["From"] = _single_address(self.from_address, "from_address")
        message["To"] = _single_address(str(arguments["to"]), "to")
        message["Subject"] = subject
        message.set_content(str(arguments["body"]))
        return message

    def _send(self, message: EmailMessage) -> None:
        assert self.host is not None
        with smtplib.SMTP(self.host, self.port, timeout=self.config.timeout_seconds) as smtp:
            if self.config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user and self._password:
                smtp.login(self.user, self._password)
            smtp.send_message(message)

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        message = self._message(arguments)
        try:
            await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise ToolError(f"could not send: {type(exc).__name__}: {exc}") from None
        return {"sent": True, "to": message["To"], "subject": message["Subject"]}

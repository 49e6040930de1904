"""``send_slack`` and ``send_email`` against real servers on loopback (a scripted HTTP server,
an aiosmtpd SMTP server), and their clear refusals when the operator configured nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import build_builtin
from tests.support.http_receivers import Canned, ScriptedHTTPServer
from tests.support.smtp import SMTPReceiver

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")
MAIL = {"to": "ops@example.com", "subject": "Disk full", "body": "Please look.\nThanks"}


def builtin(name: str, env: dict[str, str] | None = None, **config):
    cfg = TypeAdapter(AnyTool).validate_python({"type": "builtin", "name": name, "config": config})
    return build_builtin(cfg, env=env or {})


@pytest.fixture
def smtp() -> Iterator[SMTPReceiver]:
    with SMTPReceiver() as receiver:
        yield receiver


async def test_send_slack_posts_text_and_channel() -> None:
    with ScriptedHTTPServer([Canned(200, "ok")]) as slack:
        env = {"SLACK_WEBHOOK_URL": f"{slack.url}/services/T/B/X"}
        tool = builtin("send_slack", env, allow_private_network=True)
        result = await tool.call({"message": "deployed", "channel": "#ops"}, CTX)
        assert result.ok, result.content
        [received] = slack.requests
        assert received.path == "/services/T/B/X"
        assert received.json() == {"text": "deployed", "channel": "#ops"}


async def test_send_slack_through_the_ssrf_guard() -> None:
    with ScriptedHTTPServer() as slack:
        result = await builtin("send_slack", webhook_url=slack.url).call({"message": "x"}, CTX)
        assert not result.ok and "loopback" in result.content
        assert slack.requests == []


async def test_send_slack_names_what_is_missing() -> None:
    result = await builtin("send_slack").call({"message": "x"}, CTX)
    assert not result.ok
    assert "config.webhook_url" in result.content and "SLACK_WEBHOOK_URL" in result.content


async def test_send_email_delivers_over_smtp(smtp: SMTPReceiver) -> None:
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_FROM": "bot@example.com"}
    result = await builtin("send_email", env, starttls=False).call(MAIL, CTX)
    assert result.ok, result.content
    [(sender, recipients, message)] = smtp.messages
    assert (sender, recipients) == ("bot@example.com", ["ops@example.com"])
    assert message["Subject"] == "Disk full"
    assert message.get_payload().replace("\r\n", "\n").strip() == "Please look.\nThanks"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("to", "a@example.com\nBcc: everyone@example.com", "line breaks"),
        ("to", "a@example.com, b@example.com", "one address"),
        ("to", "not an address", "not an email address"),
        ("subject", "hi\r\nBcc: x@example.com", "no line breaks"),
    ],
)
async def test_send_email_refuses_header_injection(
    smtp: SMTPReceiver, field: str, value: str, words: str
) -> None:
    tool = builtin(
        "send_email",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        from_address="bot@example.com",
        starttls=False,
    )
    result = await tool.call({**MAIL, field: value}, CTX)
    assert not result.ok and words in result.content
    assert smtp.messages == []


async def test_send_email_names_what_is_missing() -> None:
    result = await builtin("send_email").call(MAIL, CTX)
    assert not result.ok
    assert "config.smtp_host or SMTP_HOST" in result.content
    assert "config.from_address or SMTP_FROM" in result.content


async def test_send_email_reports_an_unreachable_server(closed_port_url: str) -> None:
    port = int(closed_port_url.rsplit(":", 1)[1].strip("/"))
    tool = builtin(
        "send_email", smtp_host="127.0.0.1", smtp_port=port, from_address="b@example.com"
    )
    result = await tool.call(MAIL, CTX)
    assert not result.ok and "could not send" in result.content

"""A signed WhatsApp message through `astromesh local`: the webhook route goes to the
whatsapp function (its secrets from the emulated Secrets Manager, read by the exec wrapper),
which answers 200 at once; its Event self-invocation runs the agent and the reply reaches
the recording Graph API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.local_server import LocalServer
from tests.support.messaging import (
    SAMPLE_EVENTS_ENV,
    PlatformServer,
    signed,
    wa_text,
    whatsapp_delivery,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer

WEBHOOK = "/v1/channels/whatsapp/webhook"


def delivery(*messages: dict[str, Any]) -> dict[str, Any]:
    """Meta's payload for the deployment's phone number (the sample events' one)."""
    payload = whatsapp_delivery(*messages)
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = SAMPLE_EVENTS_ENV["WHATSAPP_PHONE_NUMBER_ID"]
    return payload


def test_a_signed_message_is_answered_through_the_graph_api(
    local: LocalServer, assistant_model: ScriptedOpenAIServer, platform: PlatformServer
):
    assistant_model.push(Reply("Hello from the emulated Lambda."))
    before = len(platform.posts)
    body, headers = signed(
        delivery(wa_text("hi there", message_id="wamid.LOCAL1")),
        SAMPLE_EVENTS_ENV["WHATSAPP_APP_SECRET"],
    )

    accepted = httpx.post(f"{local.url}{WEBHOOK}", content=body, headers=headers, timeout=60)

    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"status": "ok", "accepted": 1}
    posts = platform.wait_for(before + 1, timeout=60)[before:]
    assert [p.text for p in posts] == ["Hello from the emulated Lambda."], local.output[-4000:]
    phone_number_id = SAMPLE_EVENTS_ENV["WHATSAPP_PHONE_NUMBER_ID"]
    assert posts[0].path == f"/{phone_number_id}/messages"
    access_token = SAMPLE_EVENTS_ENV["WHATSAPP_ACCESS_TOKEN"]
    assert posts[0].headers["authorization"] == f"Bearer {access_token}"


def test_a_wrong_signature_is_refused(local: LocalServer, platform: PlatformServer):
    before = len(platform.posts)
    body, headers = signed(delivery(wa_text("forged")), "not-the-app-secret")
    refused = httpx.post(f"{local.url}{WEBHOOK}", content=body, headers=headers, timeout=60)
    assert refused.status_code == 403
    assert len(platform.posts) == before


def test_the_subscription_check_answers_the_challenge(local: LocalServer):
    token = SAMPLE_EVENTS_ENV["WHATSAPP_VERIFY_TOKEN"]
    query = f"hub.mode=subscribe&hub.verify_token={token}&hub.challenge=4242"
    answer = httpx.get(f"{local.url}{WEBHOOK}?{query}", timeout=60)
    assert (answer.status_code, answer.text) == (200, "4242")

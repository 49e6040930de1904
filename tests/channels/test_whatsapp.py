"""The WhatsApp webhook on the local app: handshake, signatures, exactly-once, replies, limits.

Replies go to a real HTTP server on 127.0.0.1 standing in for the Graph API
(``WHATSAPP_API_URL``); the agent answers from a scripted model server; claims and rate
limits live in the test's Redis slice unless a test asks for the in-memory fallback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import yaml

from astromesh.channels.messaging.inbox import FAILURE_NOTICE, MEDIA_NOTICE, RATE_NOTICE
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    PlatformServer,
    signed,
    wa_image,
    wa_status,
    wa_text,
    whatsapp_delivery,
    whatsapp_env,
)
from tests.support.model_servers import Reply

WEBHOOK = "/v1/channels/whatsapp/webhook"


@pytest.fixture
def graph() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


@pytest.fixture
def whatsapp(agents_dir, make_app, client_for, graph, openai_server, redis_url, redis_prefix):
    """``make(redis=True, **env)`` -> (app, client) for the helper agent on WhatsApp."""
    write_agent(agents_dir, model=primary(openai_server.url))

    def make(*, redis: bool = True, **extra: str):
        env = whatsapp_env(graph.url, **extra)
        if redis:
            env |= {
                "ASTROMESH_REDIS_URL": redis_url,
                "ASTROMESH_CHANNELS_REDIS_PREFIX": redis_prefix,
            }
        app = make_app(state=MemoryBackend(), env=env)
        return app, client_for(app)

    return make


async def drain(app) -> None:
    await app.state.channel_hub.drain()


async def post(client, payload, *, secret: str = APP_SECRET, **headers: str):
    body, signed_headers = signed(payload, secret)
    return await client.post(WEBHOOK, content=body, headers={**signed_headers, **headers})


async def test_the_handshake_returns_the_challenge_as_text(whatsapp):
    _, client = whatsapp()
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    ok = await client.get(WEBHOOK, params=query)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")

    wrong = await client.get(WEBHOOK, params={**query, "hub.verify_token": "nope"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "forbidden"
    not_subscribe = await client.get(WEBHOOK, params={**query, "hub.mode": "unsubscribe"})
    assert not_subscribe.status_code == 403


async def test_a_message_is_answered_through_the_graph_api(whatsapp, graph, openai_server):
    app, client = whatsapp()
    openai_server.push(Reply("Hello from the agent."))

    response = await post(client, whatsapp_delivery(wa_text("Hi there")))

    assert response.status_code == 200 and response.json() == {"status": "ok", "accepted": 1}
    await drain(app)
    [reply] = graph.wait_for(1)
    assert reply.path == f"/{PHONE_NUMBER_ID}/messages"
    assert reply.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert reply.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15551234567",
        "type": "text",
        "text": {"preview_url": False, "body": "Hello from the agent."},
    }
    assert openai_server.requests[0]["messages"][-1]["content"] == "Hi there"


async def test_the_sender_keeps_one_conversation(whatsapp, graph, openai_server):
    app, client = whatsapp()
    openai_server.push(Reply("First answer."), Reply("Second answer."))
    await post(client, whatsapp_delivery(wa_text("My name is Ada.", message_id="wamid.1")))
    await drain(app)
    await post(client, whatsapp_delivery(wa_text("What is my name?", message_id="wamid.2")))
    await drain(app)

    second = [m["content"] for m in openai_server.requests[1]["messages"]]
    assert "My name is Ada." in second and "First answer." in second
    runs = await (await app.state.services.runtime.state()).runs.list_runs(agent="helper")
    assert {run.session_id for run in runs} == {"whatsapp:15551234567"}


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_a_senders_messages_are_answered_one_at_a_time(whatsapp, graph, openai_server, redis):
    """Two messages sent in quick succession: the second run waits for the first, so it
    sees the first turn in the history (run together, each would miss the other)."""
    app, client = whatsapp(redis=redis)
    openai_server.push(Reply("First answer.", delay=0.5), Reply("Second answer."))

    await asyncio.gather(
        post(client, whatsapp_delivery(wa_text("My name is Ada.", message_id="wamid.T1"))),
        post(client, whatsapp_delivery(wa_text("What is my name?", message_id="wamid.T2"))),
    )
    await drain(app)

    first, second = ([m["content"] for m in r["messages"]] for r in openai_server.requests)
    assert first[-1] in second and "First answer." in second
    assert sorted(graph.texts()) == ["First answer.", "Second answer."]


async def test_signatures_are_checked_over_the_raw_body(whatsapp, graph, openai_server):
    _, client = whatsapp()
    payload = whatsapp_delivery(wa_text("hello"))

    missing = await client.post(WEBHOOK, json=payload)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"

    wrong_secret = await post(client, payload, secret="not-the-app-secret")
    assert wrong_secret.status_code == 403

    body, headers = signed(payload)
    reformatted = json.dumps(payload, indent=2).encode()  # same JSON, other bytes
    tampered = await client.post(WEBHOOK, content=reformatted, headers=headers)
    assert tampered.status_code == 403

    garbage = await client.post(
        WEBHOOK, content=body, headers={**headers, "x-hub-signature-256": "sha256=zz"}
    )
    assert garbage.status_code == 403
    assert graph.posts == [] and openai_server.requests == []


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_replayed_deliveries_run_once_under_concurrency(
    whatsapp, graph, openai_server, redis
):
    app, client = whatsapp(redis=redis)
    openai_server.push(Reply("Only once."))
    payload = whatsapp_delivery(wa_text("Answer me once", message_id="wamid.REPLAYED"))

    responses = await asyncio.gather(*(post(client, payload) for _ in range(12)))

    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["accepted"] for r in responses) == 1
    await drain(app)
    await asyncio.sleep(0.2)  # nothing else is on its way
    assert len(openai_server.requests) == 1
    assert graph.texts() == ["Only once."]


async def test_replays_are_caught_across_app_instances(whatsapp, graph, openai_server):
    """Two Lambda-like instances share the claims in Redis."""
    first, first_client = whatsapp()
    second, second_client = whatsapp()
    openai_server.push(Reply("Just one reply."))
    payload = whatsapp_delivery(wa_text("hi", message_id="wamid.SHARED"))

    answers = await asyncio.gather(post(first_client, payload), post(second_client, payload))

    assert sorted(r.json()["accepted"] for r in answers) == [0, 1]
    await drain(first)
    await drain(second)
    assert graph.texts() == ["Just one reply."]


async def test_a_long_answer_is_split_on_sentence_boundaries(whatsapp, graph, openai_server):
    app, client = whatsapp()
    sentence = "This sentence is part of a very long answer about agent runtimes. "
    answer = (sentence * 140).strip()  # ~9,300 characters
    openai_server.push(Reply(answer))

    await post(client, whatsapp_delivery(wa_text("Tell me everything")))
    await drain(app)

    texts = graph.texts()
    assert len(texts) == 3
    assert all(len(text) <= 4096 for text in texts)
    assert all(text.endswith("runtimes.") for text in texts)
    assert " ".join(texts) == answer


async def test_statuses_and_reactions_are_acknowledged_without_a_run(
    whatsapp, graph, openai_server
):
    app, client = whatsapp()
    reaction = {
        "from": "15551234567",
        "id": "wamid.R",
        "type": "reaction",
        "reaction": {"message_id": "wamid.OUT", "emoji": "👍"},
    }
    payload = whatsapp_delivery(
        reaction, statuses=[wa_status("sent"), wa_status("delivered"), wa_status("read")]
    )

    response = await post(client, payload)

    assert response.status_code == 200 and response.json()["accepted"] == 0
    await drain(app)
    assert openai_server.requests == [] and graph.posts == []


async def test_media_gets_a_text_only_notice_once(whatsapp, graph, openai_server):
    app, client = whatsapp()
    payload = whatsapp_delivery(wa_image(message_id="wamid.PIC"))

    await asyncio.gather(post(client, payload), post(client, payload))
    await drain(app)

    assert graph.texts() == [MEDIA_NOTICE]
    assert openai_server.requests == []


async def test_messages_for_another_number_are_ignored(whatsapp, graph, openai_server):
    _app, client = whatsapp()
    payload = whatsapp_delivery(wa_text("hi"))
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"

    response = await post(client, payload)

    assert response.json()["accepted"] == 0


async def test_a_failed_run_gets_an_apology(whatsapp, graph, openai_server):
    app, client = whatsapp()
    openai_server.push(Reply(status=500))  # and no fallback candidate

    await post(client, whatsapp_delivery(wa_text("hi")))
    await drain(app)

    assert graph.texts() == [FAILURE_NOTICE]


async def test_a_refused_reply_is_logged_not_retried(whatsapp, graph, openai_server, caplog):
    app, client = whatsapp()
    openai_server.push(Reply("An answer Meta refuses."))
    graph.fail_next(400)

    await post(client, whatsapp_delivery(wa_text("hi")))
    await drain(app)

    assert len(graph.posts) == 1
    assert "reply not sent" in caplog.text and "whatsapp answered 400" in caplog.text


@pytest.mark.parametrize("redis", [True, False], ids=["redis", "memory"])
async def test_the_rate_limit_per_sender(
    agents_dir, whatsapp, graph, openai_server, redis, monkeypatch
):
    channels = {
        "channels": {
            "whatsapp": {
                "verify_token": "${WHATSAPP_VERIFY_TOKEN}",
                "access_token": "${WHATSAPP_ACCESS_TOKEN}",
                "phone_number_id": "${WHATSAPP_PHONE_NUMBER_ID}",
                "app_secret": "${WHATSAPP_APP_SECRET}",
                "default_agent": "helper",
                "rate_limit": {"window_seconds": 60, "max_messages": 2},
            }
        }
    }
    (agents_dir / "channels.yaml").write_text(yaml.safe_dump(channels))
    app, client = whatsapp(redis=redis)
    openai_server.push(Reply("one"), Reply("two"), Reply("other sender"))

    for number in range(5):
        await post(
            client, whatsapp_delivery(wa_text(f"msg {number}", message_id=f"wamid.{number}"))
        )
    await post(
        client, whatsapp_delivery(wa_text("hello", message_id="wamid.X", sender="15550000001"))
    )
    await drain(app)

    by_recipient: dict[str, list[str]] = {}
    for reply in graph.posts:
        by_recipient.setdefault(reply.body["to"], []).append(reply.text)
    first, other = by_recipient["15551234567"], by_recipient["15550000001"]
    assert len(first) == 3 and first.count(RATE_NOTICE) == 1  # two answers, told once
    assert len(other) == 1 and RATE_NOTICE not in other  # a limit per sender
    answers = sorted(text for text in first + other if text != RATE_NOTICE)
    assert answers == ["one", "other sender", "two"]  # the runs ran concurrently
    assert len(openai_server.requests) == 3


async def test_an_unconfigured_channel_is_a_404(make_app, client_for, agents_dir):
    write_agent(agents_dir)
    client = client_for(make_app(state=MemoryBackend(), env={}))
    response = await client.post(WEBHOOK, content=b"{}")
    assert response.status_code == 404
    assert "not configured" in response.json()["error"]["message"]


async def test_in_lambda_the_api_function_does_not_serve_the_webhook(whatsapp, make_app, graph):
    app = make_app(state=MemoryBackend(), env=whatsapp_env(graph.url), background_runs=False)
    from httpx import ASGITransport, AsyncClient

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        response = await post(client, whatsapp_delivery(wa_text("hi")))
    assert response.status_code == 501
    assert response.json()["error"]["code"] == "channel_webhook_unavailable"

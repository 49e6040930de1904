"""Messaging never drops a message silently: hostile but correctly signed webhook deliveries.

WhatsApp deliveries and Telegram updates of every wrong shape (the ones a hostile pass found,
then whatever hypothesis builds from JSON shapes and unicode with lone surrogates and NUL)
are answered ``200`` (malformed items counted in ``astromesh.messages.ignored`` and logged
with the reason) or refused ``400``, never ``5xx``. Every message a ``200`` accepted gets
exactly one reply (the agent's answer, or a notice), always to a valid recipient, never to
an empty or malformed chat id. A delivery that fails after its messages were claimed
releases the claims, so the platform's redelivery is answered.

Real parts only: the app in-process over httpx's ASGI transport, the agent's model a
scripted OpenAI-compatible server, replies recorded by a local Graph/Bot API server, claims
in the test's Redis slice.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from astromesh.channels import ServerSettings, create_app
from astromesh.channels.messaging.inbox import FAILURE_NOTICE, MEDIA_NOTICE
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from astromesh.telemetry.metrics import MESSAGES_IGNORED, OtelMetrics
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    PlatformServer,
    sign,
    telegram_env,
    telegram_headers,
    telegram_update,
    wa_text,
    whatsapp_delivery,
    whatsapp_env,
)
from tests.support.model_servers import Reply, ScriptedOpenAIServer

WHATSAPP = "/v1/channels/whatsapp/webhook"
TELEGRAM = "/v1/channels/telegram/webhook"
ANSWER = "The scripted answer."
WA_ID = re.compile(r"[A-Za-z0-9+][A-Za-z0-9._+-]{0,63}")
CHAT_ID = re.compile(r"-?[0-9]{1,32}")


@dataclass
class Channels:
    app: FastAPI
    client: httpx.AsyncClient
    graph: PlatformServer
    model: ScriptedOpenAIServer
    reader: InMemoryMetricReader

    async def whatsapp(self, body: bytes) -> httpx.Response:
        headers = {
            "content-type": "application/json",
            "x-hub-signature-256": sign(body, APP_SECRET),
        }
        return await self.client.post(WHATSAPP, content=body, headers=headers)

    async def telegram(self, body: bytes) -> httpx.Response:
        return await self.client.post(TELEGRAM, content=body, headers=telegram_headers())

    async def drain(self) -> None:
        hub = getattr(self.app.state, "channel_hub", None)
        if hub is not None:
            await hub.drain()

    def ignored(self) -> dict[str, int]:
        """``astromesh.messages.ignored`` by ``channel/reason`` so far."""
        counts: dict[str, int] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == MESSAGES_IGNORED.otel_name:
                        for point in metric.data.data_points:
                            key = f"{point.attributes['channel']}/{point.attributes['reason']}"
                            counts[key] = int(point.value)
        return counts


@pytest.fixture
def graph() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


async def open_channels(
    agents_dir, model, graph, redis_url, redis_prefix, *, rate_limited: bool
) -> tuple[Channels, AgentRuntime]:
    write_agent(agents_dir, model=primary(model.url))
    if not rate_limited:  # hypothesis sends many messages from one sender
        (agents_dir / "channels.yaml").write_text(
            "channels:\n"
            "  whatsapp: {rate_limit: null, verify_token: v, access_token: a,"
            f" phone_number_id: '{PHONE_NUMBER_ID}', app_secret: {APP_SECRET},"
            f" api_url: '{graph.url}'}}\n"
            "  telegram: {rate_limit: null, bot_token: '123456:test-bot-token',"
            f" webhook_secret: test-webhook-secret, api_url: '{graph.url}'}}\n"
        )
    reader = InMemoryMetricReader()
    env = {
        **whatsapp_env(graph.url),
        **telegram_env(graph.url),
        "ASTROMESH_REDIS_URL": redis_url,
        "ASTROMESH_CHANNELS_REDIS_PREFIX": redis_prefix,
    }
    runtime = AgentRuntime(
        agents_dir,
        env=env,
        state=MemoryBackend(),
        metrics=OtelMetrics(MeterProvider(metric_readers=[reader]).get_meter("test")),
    )
    app = create_app(runtime, ServerSettings())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    return Channels(app, client, graph, model, reader), runtime


async def close_channels(channels: Channels, runtime: AgentRuntime) -> None:
    await channels.client.aclose()
    await channels.app.state.services.aclose()
    hub = getattr(channels.app.state, "channel_hub", None)
    if hub is not None:
        await hub.aclose()
    await runtime.close()


@pytest.fixture
async def channels(
    agents_dir, openai_server, graph, redis_url, redis_prefix
) -> AsyncIterator[Channels]:
    """WhatsApp and Telegram on one app, rate limits off, claims in Redis; tests push the
    model's replies they need."""
    opened, runtime = await open_channels(
        agents_dir, openai_server, graph, redis_url, redis_prefix, rate_limited=False
    )
    try:
        yield opened
    finally:
        await close_channels(opened, runtime)


@pytest.fixture
async def limited(
    agents_dir, openai_server, graph, redis_url, redis_prefix
) -> AsyncIterator[Channels]:
    """The same with the default rate limits on."""
    opened, runtime = await open_channels(
        agents_dir, openai_server, graph, redis_url, redis_prefix, rate_limited=True
    )
    try:
        yield opened
    finally:
        await close_channels(opened, runtime)


def wa(*messages: Any, value: Any = None, entry: Any = None) -> bytes:
    """A WhatsApp delivery, with the given parts replaced by hostile ones."""
    payload = whatsapp_delivery(*messages) if messages else whatsapp_delivery()
    if value is not None:
        payload["entry"][0]["changes"][0]["value"] = value
    if entry is not None:
        payload["entry"] = entry
    return json.dumps(payload).encode()


def tg(message: Any, **update: Any) -> bytes:
    return json.dumps({"update_id": 5001, "message": message, **update}).encode()


META = {"phone_number_id": PHONE_NUMBER_ID}
WHATSAPP_CASES = {
    "entry-a-string": (json.dumps({"entry": "abc"}).encode(), "shape"),
    "entry-item-a-string": (wa(entry=["x"]), "shape"),
    "changes-a-string": (wa(entry=[{"changes": "x"}]), "shape"),
    "change-a-string": (wa(entry=[{"changes": ["x"]}]), "shape"),
    "value-a-string": (wa(entry=[{"changes": [{"value": "x"}]}]), "shape"),
    "metadata-a-string": (wa(value={"metadata": "x", "messages": [wa_text("hi")]}), "shape"),
    "messages-a-string": (wa(value={"metadata": META, "messages": "x"}), "shape"),
    "message-an-int": (wa(value={"metadata": META, "messages": [1]}), "shape"),
    "text-a-string": (
        wa({"id": "wamid.T", "from": "15551234567", "type": "text", "text": "hello"}),
        "shape",
    ),
    "text-body-an-int": (wa({**wa_text("x"), "text": {"body": 5}}), "shape"),
    "from-an-object": (wa({**wa_text("hi"), "from": {"a": 1}}), "no_recipient"),
    "from-empty": (wa({**wa_text("hi"), "from": ""}), "no_recipient"),
    "from-a-path": (wa({**wa_text("hi"), "from": "../1"}), "no_recipient"),
    "from-with-spaces": (wa({**wa_text("hi"), "from": "1 2"}), "no_recipient"),
    "id-a-list": (wa({**wa_text("hi"), "id": [1]}), "no_id"),
    "statuses-an-int": (wa(value={"metadata": META, "statuses": [1]}), "shape"),
}


@pytest.mark.parametrize(("body", "reason"), WHATSAPP_CASES.values(), ids=WHATSAPP_CASES)
async def test_a_signed_whatsapp_delivery_of_the_wrong_shape_is_acknowledged_and_counted(
    channels, caplog, body, reason
):
    caplog.set_level(logging.WARNING, "astromesh.channels.messaging")

    response = await channels.whatsapp(body)
    await channels.drain()

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 0
    assert channels.graph.posts == []
    assert channels.ignored() == {f"whatsapp/{reason}": 1}
    assert f"reason=<{reason}:" in caplog.text


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b"[]", b"null", b"not json", b"\xff\xfe"],
    ids=["nested-100k", "a-list", "null", "not-json", "not-utf8"],
)
async def test_a_signed_body_that_is_not_a_json_object_is_refused_400(channels, body):
    whatsapp = await channels.whatsapp(body)
    telegram = await channels.telegram(body)
    assert (whatsapp.status_code, telegram.status_code) == (400, 400)
    assert whatsapp.json()["error"]["code"] == "bad_request"
    assert channels.graph.posts == []


TELEGRAM_CASES = {
    "from-a-string": (tg({"from": "x", "chat": {"id": 42}, "text": "hi"}), "shape"),
    "from-an-int": (tg({"from": 5, "chat": {"id": 42}, "text": "hi"}), "shape"),
    "from-id-a-list": (tg({"from": {"id": [1]}, "chat": {"id": 42}, "text": "hi"}), "shape"),
    "chat-a-list": (tg({"from": {"id": 42}, "chat": [42], "text": "hi"}), "no_recipient"),
    "chat-id-not-a-number": (tg({"chat": {"id": "@x y"}, "text": "hi"}), "no_recipient"),
    "neither-from-nor-chat": (tg({"text": "hi"}), "no_recipient"),
    "text-an-object": (tg({"chat": {"id": 42}, "text": {"a": 1}}), "shape"),
    "message-a-list": (tg([1, 2]), "shape"),
}


@pytest.mark.parametrize(("body", "reason"), TELEGRAM_CASES.values(), ids=TELEGRAM_CASES)
async def test_a_telegram_update_of_the_wrong_shape_is_acknowledged_never_sent_to_a_bad_chat(
    channels, caplog, body, reason
):
    caplog.set_level(logging.WARNING, "astromesh.channels.messaging")

    response = await channels.telegram(body)
    await channels.drain()

    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 0
    assert channels.graph.posts == []
    assert channels.ignored() == {f"telegram/{reason}": 1}
    assert f"reason=<{reason}:" in caplog.text


@pytest.mark.parametrize(
    "update",
    [{"message": {"text": "hi"}}, {"update_id": [1]}, {"update_id": True}],
    ids=["no-update-id", "update-id-a-list", "update-id-a-bool"],
)
async def test_an_update_without_an_integer_id_is_refused_400(channels, update):
    response = await channels.telegram(json.dumps(update).encode())
    assert response.status_code == 400
    assert channels.graph.posts == []


async def test_the_well_formed_messages_of_a_partly_malformed_delivery_are_answered(channels):
    channels.model.push(Reply(ANSWER))
    good = wa_text("hi", message_id="wamid.GOOD")
    body = wa(value={"metadata": META, "messages": [1, good, {**good, "id": ""}, "x"]})

    response = await channels.whatsapp(body)
    await channels.drain()

    assert response.json()["accepted"] == 1
    assert channels.graph.texts() == [ANSWER]
    assert channels.ignored() == {"whatsapp/shape": 2, "whatsapp/no_id": 1}


async def test_text_with_invalid_code_points_is_repaired_and_answered(channels):
    channels.model.push(Reply(ANSWER), Reply(ANSWER))
    await channels.whatsapp(wa(wa_text("hi \ud800 there \x00", message_id="wamid.S")))
    await channels.telegram(json.dumps(telegram_update("x \udfff y", update_id=7)).encode())
    await channels.drain()

    assert channels.graph.texts() == [ANSWER, ANSWER]
    asked = sorted(r["messages"][-1]["content"] for r in channels.model.requests)
    assert asked == ["hi \ufffd there \ufffd", "x \ufffd y"]


async def test_a_model_answer_with_invalid_text_reaches_the_sender_repaired(channels):
    channels.model.push(Reply("answer \ud800 with a lone surrogate"))

    await channels.telegram(json.dumps(telegram_update("hi", update_id=8)).encode())
    await channels.drain()

    assert channels.graph.texts() == ["answer \ufffd with a lone surrogate"]


async def test_a_failure_after_the_claim_releases_it_and_the_redelivery_is_answered(
    limited, redis_url, redis_prefix
):
    limited.model.push(Reply(ANSWER))
    body = wa(wa_text("hi", message_id="wamid.RETRY"))
    # The sender's rate-limit key holds a string, so the rate limit (checked after the claim)
    # fails with WRONGTYPE: an error nobody planned for, between the claim and the 200.
    rate_key = f"{redis_prefix}:rate:whatsapp:15551234567"
    with redis.Redis.from_url(redis_url) as direct:
        direct.set(rate_key, "not a sorted set")
        refused = await limited.whatsapp(body)
        direct.delete(rate_key)
    redelivered = await limited.whatsapp(body)
    replayed = await limited.whatsapp(body)
    await limited.drain()

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "delivery_not_accepted"
    assert refused.headers["retry-after"] == "2"
    assert redelivered.json()["accepted"] == 1
    assert replayed.json()["accepted"] == 0
    assert limited.graph.texts() == [ANSWER]


# -- hypothesis: any shape, any text ---------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["\ud800", "a\x00b", "\ufffe", "", " ", "hi"]
)
"""Any text: lone surrogates, NUL, noncharacters and emoji included."""
WORDS = st.text(st.characters(exclude_categories=()), min_size=1, max_size=12).filter(
    str.strip
) | st.sampled_from(["hello \ud800", "nul \x00 inside", "\U0001f600", "question?"])
"""Text a sender might type (not blank), invalid code points included."""
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


FRESH = st.builds(next, st.just(itertools.count(1)))
"""A message id never drawn before (hypothesis replays small integers, and a replayed id is
a redelivery: dropped, rightly, but then nothing new is answered)."""


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``value`` mostly (7 in 8), any JSON value in its place sometimes."""
    return st.integers(0, 7).flatmap(lambda pick: value if pick else JSON)


WA_MESSAGE = st.fixed_dictionaries(
    {
        "id": maybe(FRESH.map(lambda n: f"wamid.{n}")),
        "from": maybe(st.sampled_from(["15551234567", "447700900123"])),
        "type": maybe(st.sampled_from(["text", "text", "text", "button", "image", "reaction"])),
        "text": maybe(st.fixed_dictionaries({"body": maybe(WORDS)})),
    },
    optional={
        "button": maybe(st.fixed_dictionaries({"text": maybe(WORDS)})),
        "interactive": JSON,
    },
)
WA_VALUE = st.fixed_dictionaries(
    {
        "metadata": maybe(
            st.fixed_dictionaries({"phone_number_id": maybe(st.just(PHONE_NUMBER_ID))})
        ),
        "messages": maybe(st.lists(maybe(WA_MESSAGE), min_size=1, max_size=3)),
    },
    optional={"statuses": maybe(st.lists(JSON, max_size=2))},
)
WA_PAYLOAD = st.fixed_dictionaries(
    {
        "entry": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {
                            "changes": maybe(
                                st.lists(
                                    maybe(st.fixed_dictionaries({"value": maybe(WA_VALUE)})),
                                    max_size=2,
                                )
                            )
                        }
                    )
                ),
                min_size=1,
                max_size=2,
            )
        )
    }
)
TG_UPDATE = st.fixed_dictionaries(
    {
        "update_id": maybe(FRESH),
        "message": maybe(
            st.fixed_dictionaries(
                {
                    "chat": maybe(
                        st.fixed_dictionaries({"id": maybe(st.integers(-(10**6), 10**6))})
                    ),
                    "text": maybe(WORDS),
                },
                optional={
                    "from": maybe(
                        st.fixed_dictionaries(
                            {"id": maybe(st.integers(1, 10**6))}, optional={"is_bot": JSON}
                        )
                    ),
                    "photo": JSON,
                },
            )
        ),
    },
    optional={"edited_message": JSON},
)
BODIES = st.integers(0, 7).flatmap(
    lambda pick: st.binary(max_size=64) if pick == 0 else maybe(WA_PAYLOAD).map(_encoded)
)
"""Signed bodies: Meta's payload of any shape mostly, raw bytes sometimes."""


def _encoded(payload: Any) -> bytes:
    return json.dumps(payload).encode()


HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def accounted(
    channels: Channels, deliver: Any, body: bytes, recipient: re.Pattern[str]
) -> None:
    """No 5xx; every message a 200 accepted is answered once, to a valid recipient."""
    channels.model.push(*(Reply(ANSWER) for _ in range(12)))  # the most one body can hold
    before = len(channels.graph.posts)
    response = await deliver(body)
    await channels.drain()

    assert response.status_code in (200, 400), response.text
    accepted = response.json()["accepted"] if response.status_code == 200 else 0
    event(f"status {response.status_code}, accepted {min(accepted, 2)}{'+' * (accepted > 2)}")
    new = channels.graph.posts[before:]
    assert len(new) == accepted
    for post in new:
        to = post.body.get("to", post.body.get("chat_id"))
        assert isinstance(to, str) and recipient.fullmatch(to), post.body
        assert post.text in (ANSWER, FAILURE_NOTICE, MEDIA_NOTICE), post.text


@HYPOTHESIS
@given(body=BODIES)
async def test_any_signed_whatsapp_delivery_is_200_or_400_and_accounted_for(channels, body):
    await accounted(channels, channels.whatsapp, body, WA_ID)


@HYPOTHESIS
@given(update=maybe(TG_UPDATE))
async def test_any_telegram_update_is_200_or_400_and_accounted_for(channels, update):
    await accounted(channels, channels.telegram, json.dumps(update).encode(), CHAT_ID)

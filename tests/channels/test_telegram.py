"""The Telegram webhook on the local app: secret token, exactly-once updates, sendMessage."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from astromesh.channels.messaging.inbox import MEDIA_NOTICE
from astromesh.stores.memory import MemoryBackend
from tests.support.agents import primary, write_agent
from tests.support.messaging import (
    BOT_TOKEN,
    PlatformServer,
    telegram_env,
    telegram_headers,
    telegram_update,
)
from tests.support.model_servers import Reply

WEBHOOK = "/v1/channels/telegram/webhook"


@pytest.fixture
def bot_api() -> Iterator[PlatformServer]:
    with PlatformServer() as server:
        yield server


@pytest.fixture
def telegram(agents_dir, make_app, client_for, bot_api, openai_server, redis_url, redis_prefix):
    write_agent(agents_dir, model=primary(openai_server.url))
    env = telegram_env(
        bot_api.url,
        ASTROMESH_REDIS_URL=redis_url,
        ASTROMESH_CHANNELS_REDIS_PREFIX=redis_prefix,
    )
    app = make_app(state=MemoryBackend(), env=env)
    return app, client_for(app)


async def test_an_update_is_answered_with_send_message(telegram, bot_api, openai_server):
    app, client = telegram
    openai_server.push(Reply("Hi from the bot."))

    response = await client.post(WEBHOOK, json=telegram_update("hello"), headers=telegram_headers())

    assert response.status_code == 200 and response.json()["accepted"] == 1
    await app.state.channel_hub.drain()
    [reply] = bot_api.wait_for(1)
    assert reply.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert reply.body == {"chat_id": "42", "text": "Hi from the bot."}
    runs = await (await app.state.services.runtime.state()).runs.list_runs()
    assert [run.session_id for run in runs] == ["telegram:42"]


async def test_the_secret_token_is_required(telegram, bot_api, openai_server):
    _, client = telegram
    missing = await client.post(WEBHOOK, json=telegram_update())
    wrong = await client.post(WEBHOOK, json=telegram_update(), headers=telegram_headers("guess"))
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert openai_server.requests == [] and bot_api.posts == []


async def test_an_update_is_processed_once_under_concurrency(telegram, bot_api, openai_server):
    app, client = telegram
    openai_server.push(Reply("Once."))
    update = telegram_update("again?", update_id=777)

    answers = await asyncio.gather(
        *(client.post(WEBHOOK, json=update, headers=telegram_headers()) for _ in range(10))
    )

    assert sum(a.json()["accepted"] for a in answers) == 1
    await app.state.channel_hub.drain()
    await asyncio.sleep(0.2)
    assert bot_api.texts() == ["Once."] and len(openai_server.requests) == 1


async def test_a_long_answer_is_split_at_4096(telegram, bot_api, openai_server):
    app, client = telegram
    answer = " ".join(["word"] * 2500)  # 12,499 characters, no sentence ends
    openai_server.push(Reply(answer))

    await client.post(WEBHOOK, json=telegram_update("long"), headers=telegram_headers())
    await app.state.channel_hub.drain()

    texts = bot_api.texts()
    assert len(texts) == 4 and all(len(t) <= 4096 for t in texts)
    assert " ".join(texts) == answer


async def test_media_edits_and_bots(telegram, bot_api, openai_server):
    app, client = telegram
    photo = telegram_update(None, update_id=2, photo=[{"file_id": "F", "width": 1, "height": 1}])
    edited = {"update_id": 3, "edited_message": telegram_update("x")["message"]}
    from_bot = telegram_update("beep", update_id=4)
    from_bot["message"]["from"]["is_bot"] = True

    for update in (photo, edited, from_bot):
        response = await client.post(WEBHOOK, json=update, headers=telegram_headers())
        assert response.status_code == 200
    await app.state.channel_hub.drain()

    assert bot_api.texts() == [MEDIA_NOTICE]
    assert openai_server.requests == []


async def test_a_body_without_update_id_is_a_400(telegram):
    _, client = telegram
    response = await client.post(WEBHOOK, json={"hello": 1}, headers=telegram_headers())
    assert response.status_code == 400

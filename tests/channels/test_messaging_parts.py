"""The pieces under the channels: reply splitting, channel settings, claims and rate limits."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from astromesh.channels.messaging.config import load_channels
from astromesh.channels.messaging.guards import MemoryGuards, RedisGuards
from astromesh.channels.messaging.text import split_text, utf16_len
from astromesh.errors import ConfigurationError
from tests.support.messaging import whatsapp_env

# -- splitting -------------------------------------------------------------------------------


def test_short_text_is_one_part():
    assert split_text("  Hello.  ", 4096) == ["Hello."]
    assert split_text("", 4096) == []


def test_cuts_prefer_paragraphs_then_sentences_then_words():
    paragraphs = "A" * 60 + "\n\n" + "B" * 30
    assert split_text(paragraphs, 80) == ["A" * 60, "B" * 30]
    sentences = "One two three. Four five six. Seven eight nine."
    assert split_text(sentences, 32) == ["One two three. Four five six.", "Seven eight nine."]
    words = "alpha beta gamma delta epsilon"
    assert split_text(words, 12) == ["alpha beta", "gamma delta", "epsilon"]
    assert split_text("x" * 10, 4) == ["xxxx", "xxxx", "xx"]


def test_a_cut_never_leaves_a_stub_for_an_early_full_stop():
    text = "Hi. " + "word " * 30
    parts = split_text(text, 50)
    assert len(parts[0]) > 25


def test_lengths_are_counted_in_utf16_units():
    emoji = "😀" * 3000  # 6,000 UTF-16 units
    parts = split_text(emoji, 4096)
    assert [utf16_len(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == emoji


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400), st.integers(2, 60))
def test_every_part_fits_and_nothing_but_whitespace_is_lost(text, limit):
    parts = split_text(text, limit)
    assert all(0 < utf16_len(part) <= limit for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


# -- settings -------------------------------------------------------------------------------


def test_env_variables_configure_a_channel():
    config = load_channels(whatsapp_env("http://127.0.0.1:9"), None)
    assert config.telegram is None
    assert config.whatsapp is not None
    assert config.whatsapp.api_url == "http://127.0.0.1:9"
    assert config.whatsapp.rate_limit is not None
    assert config.whatsapp.rate_limit.max_messages == 30


def test_partial_env_names_what_is_missing():
    with pytest.raises(ConfigurationError) as caught:
        load_channels({"WHATSAPP_APP_SECRET": "s3cret-value"}, None)
    message = caught.value.message
    assert "channels.whatsapp.verify_token: missing (or set WHATSAPP_VERIFY_TOKEN)" in message
    assert "s3cret-value" not in message


def test_the_channels_file_is_interpolated_and_wins(tmp_path):
    (tmp_path / "channels.yaml").write_text(
        "channels:\n"
        "  telegram:\n"
        "    bot_token: ${BOT}\n"
        "    webhook_secret: ${SECRET:-fallback}\n"
        "    default_agent: helper\n"
        "    rate_limit: null\n"
    )
    config = load_channels({"BOT": "1:abc", "TELEGRAM_BOT_TOKEN": "ignored"}, tmp_path)
    assert config.telegram is not None
    assert (config.telegram.bot_token, config.telegram.webhook_secret) == ("1:abc", "fallback")
    assert config.telegram.rate_limit is None
    assert config.telegram.api_url == "https://api.telegram.org"


def test_file_errors_are_configuration_errors(tmp_path):
    (tmp_path / "channels.yaml").write_text("channels:\n  whatsapp:\n    verify_token: ${NOPE}\n")
    with pytest.raises(ConfigurationError, match="'NOPE' is not set"):
        load_channels({}, tmp_path)
    (tmp_path / "channels.yaml").write_text("channels:\n  slack: {token: x}\n")
    with pytest.raises(ConfigurationError, match=r"channels\.slack"):
        load_channels({}, tmp_path)
    with pytest.raises(ConfigurationError, match="not a file"):
        load_channels({"ASTROMESH_CHANNELS_FILE": str(tmp_path / "missing.yaml")}, None)


# -- claims and rate limits ---------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def guards(request, redis_url, redis_prefix):
    if request.param == "memory":
        yield MemoryGuards()
        return
    made = RedisGuards(redis_url, prefix=redis_prefix)
    yield made
    await made.aclose()


async def test_a_claim_is_won_once(guards):
    results = await asyncio.gather(*(guards.claim("whatsapp:m1") for _ in range(20)))
    assert results.count(True) == 1
    await guards.release("whatsapp:m1")
    assert await guards.claim("whatsapp:m1") is True


async def test_a_claim_expires(guards):
    assert await guards.claim("k", ttl_seconds=1)
    await asyncio.sleep(1.1)
    assert await guards.claim("k", ttl_seconds=1)


async def test_the_window_slides_and_counts_refusals(guards):
    verdicts = [await guards.hit("u", window_seconds=0.5, max_messages=2) for _ in range(4)]
    assert [(v.allowed, v.refused) for v in verdicts] == [
        (True, 0),
        (True, 0),
        (False, 1),
        (False, 2),
    ]
    await asyncio.sleep(0.6)
    again = await guards.hit("u", window_seconds=0.5, max_messages=2)
    assert again.allowed
    assert (await guards.hit("other", window_seconds=0.5, max_messages=2)).allowed


async def test_a_turn_is_held_by_one_and_freed_only_by_its_holder(guards):
    tokens = await asyncio.gather(*(guards.lease("whatsapp:s1", 5) for _ in range(10)))
    held = [t for t in tokens if t is not None]
    assert len(held) == 1
    await guards.unlease("whatsapp:s1", "not-the-holder")
    assert await guards.lease("whatsapp:s1", 5) is None  # still held
    assert await guards.lease("whatsapp:s2", 5) is not None  # another conversation
    await guards.unlease("whatsapp:s1", held[0])
    assert await guards.lease("whatsapp:s1", 5) is not None


async def test_a_turn_expires_and_the_late_holder_frees_nothing(guards):
    late = await guards.lease("telegram:s", 0.3)
    await asyncio.sleep(0.4)
    taken_over = await guards.lease("telegram:s", 5)
    assert late is not None and taken_over is not None
    await guards.unlease("telegram:s", late)  # the run that overran its turn ends now
    assert await guards.lease("telegram:s", 5) is None  # the new holder keeps it


async def test_redis_claims_hold_across_clients(redis_url, redis_prefix):
    clients = [RedisGuards(redis_url, prefix=redis_prefix) for _ in range(5)]
    try:
        results = await asyncio.gather(*(c.claim("telegram:9") for c in clients for _ in range(4)))
        assert results.count(True) == 1
        raw = aioredis.Redis.from_url(redis_url)
        ttl = await raw.ttl(f"{redis_prefix}:seen:telegram:9")
        await raw.aclose()
        assert 6 * 24 * 3600 < ttl <= 7 * 24 * 3600
    finally:
        for client in clients:
            await client.aclose()

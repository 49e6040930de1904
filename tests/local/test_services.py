"""The machine's Redis, or one `astromesh local` starts and stops; the sample key seeded."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from astromesh.auth import key_store_for
from astromesh.local.services import RedisService, ServiceError, redis_answers, seed_sample_key
from astromesh.stores.sqlite import SQLiteBackend
from tests.local.conftest import SAMPLE_KEY
from tests.support.local_server import REPO


def test_the_machines_redis_is_used_when_it_answers(redis_url):
    service = RedisService(redis_url)
    assert service.start() == redis_url and not service.started_here


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_without_one_a_redis_server_is_started_then_stopped(closed_port_url):
    nothing = closed_port_url.replace("http://", "redis://") + "/0"
    service = RedisService(default=nothing)
    url = service.start()
    try:
        assert service.started_here and url != nothing and redis_answers(url)
    finally:
        service.stop()
    assert not redis_answers(url)


def test_a_named_redis_that_does_not_answer_is_an_error(closed_port_url):
    nothing = closed_port_url.replace("http://", "redis://") + "/0"
    with pytest.raises(ServiceError, match="--redis-url"):
        RedisService(nothing).start()


async def test_the_sample_key_is_seeded_once(tmp_path):
    path = tmp_path / "state.db"
    key, created = await _in_thread(seed_sample_key, path)
    again, created_again = await _in_thread(seed_sample_key, path)
    assert (key, created, created_again) == (SAMPLE_KEY, True, False)
    assert again == key
    backend = SQLiteBackend(path)
    try:
        issued = await key_store_for(backend).verify(key)
        assert issued is not None and issued.tenant == "events"
    finally:
        await backend.close()


async def _in_thread(seed, path):
    """seed_sample_key runs its own event loop, as the command does before serving."""
    return await asyncio.to_thread(seed, REPO, sqlite_path=path, postgres_dsn=None)

"""The test-service helpers fail loudly instead of letting store tests skip."""

from __future__ import annotations

import pytest

from tests.support import services


def test_unreachable_remote_redis_is_reported() -> None:
    with pytest.raises(services.ServiceUnavailable, match="not a local address"):
        services.ensure_redis("redis://redis.invalid:6379/0")


def test_postgres_without_pgvector_is_reported(postgres_dsn: str) -> None:
    # A DSN whose database does not exist stands in for any server that cannot load pgvector.
    from psycopg.conninfo import make_conninfo

    with pytest.raises(services.ServiceUnavailable, match="pgvector"):
        services.check_pgvector(make_conninfo(postgres_dsn, dbname="astromesh_no_such_db"))


def test_redis_prefix_cleanup_touches_only_its_keys(redis_url: str, redis_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"{redis_prefix}:mine", 1)
        client.set(f"{redis_prefix}-neighbour:theirs", 1)
        assert services.delete_prefix(redis_url, redis_prefix) == 1
        assert client.exists(f"{redis_prefix}-neighbour:theirs") == 1
    finally:
        client.delete(f"{redis_prefix}-neighbour:theirs")
        client.close()

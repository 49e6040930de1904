"""The machine's services behind the emulation: Redis, and the sample events' API key.

Redis is the machine's (``redis://127.0.0.1:6379/0`` unless told otherwise); when nothing
answers there and ``redis-server`` is installed, one is started for the session (no
persistence) on a free port and stopped with it.

The sample events in ``events/`` carry one fixed API key (``events/api/run.json``); it is
issued in the functions' state store at start, so every sample is accepted as it is.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from astromesh.auth import key_store_for
from astromesh.auth.base import parse_key
from astromesh.errors import ConflictError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SAMPLE_EVENT = Path("events") / "api" / "run.json"
SAMPLE_TENANT = "events"


class ServiceError(RuntimeError):
    """A service the emulation needs is not there; the message says what to do."""


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisService:
    """The Redis to use: the one at ``url`` when it answers, else a ``redis-server`` child."""

    def __init__(self, url: str | None = None, default: str = DEFAULT_REDIS_URL) -> None:
        self.requested = url
        self.url = url or default
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def start(self) -> str:
        """The URL of a Redis that answers.

        Raises:
            ServiceError: none answers and none can be started.
        """
        if redis_answers(self.url):
            return self.url
        server = shutil.which("redis-server")
        if self.requested is not None or server is None:
            reason = "it was named explicitly" if self.requested else "redis-server not found"
            raise ServiceError(
                f"no Redis answers at {self.url} and none was started ({reason}): start one "
                "or pass --redis-url"
            )
        port = free_port()
        self.process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_answers(self.url):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise ServiceError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def sample_key(repo: Path) -> str:
    """The API key the sample events carry.

    Raises:
        ServiceError: the sample is missing or carries no well-formed key.
    """
    path = repo / SAMPLE_EVENT
    try:
        headers = json.loads(path.read_text(encoding="utf-8")).get("headers") or {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ServiceError(f"cannot read the sample key from {path}: {exc}") from None
    key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
    if not key or parse_key(key) is None:
        raise ServiceError(f"{path} carries no x-api-key to seed")
    return key


async def _issue(key: str, *, sqlite_path: Path | None, postgres_dsn: str | None) -> bool:
    from astromesh.stores.factory import open_backend

    parsed = parse_key(key)
    assert parsed is not None
    key_id, secret = parsed
    backend = (
        open_backend("postgres", postgres_dsn=postgres_dsn)
        if postgres_dsn
        else open_backend("sqlite", sqlite_path=sqlite_path or ":memory:")
    )
    await backend.open()
    try:
        await key_store_for(backend).issue(
            SAMPLE_TENANT, ["*"], label="sample events", key_id=key_id, secret=secret
        )
        return True
    except ConflictError:
        return False  # seeded by an earlier start
    finally:
        await backend.close()


def seed_sample_key(
    repo: Path, *, sqlite_path: Path | None, postgres_dsn: str | None
) -> tuple[str, bool]:
    """Issue the sample events' key in the state store; (the key, whether it was new)."""
    key = sample_key(repo)
    if sqlite_path is not None:
        sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    created = asyncio.run(_issue(key, sqlite_path=sqlite_path, postgres_dsn=postgres_dsn))
    return key, created

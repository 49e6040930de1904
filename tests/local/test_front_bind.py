"""The local front listens before ``astromesh local`` says it is ready.

``ready in`` is printed after :meth:`FrontServer.bind` and before uvicorn runs: a client that
connects at once must queue in the listen backlog and be served, never be refused, and a
taken port must fail the bind (the CLI turns it into a one-line error).
"""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from astromesh.local.front import FrontServer
from tests.support.local_server import free_port


async def hello(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """A minimal ASGI app standing in for the front."""
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


def test_a_client_connecting_between_bind_and_run_is_served_not_refused() -> None:
    port = free_port()
    server = FrontServer(hello, "127.0.0.1", port)  # type: ignore[arg-type]
    server.bind()
    early = socket.create_connection(("127.0.0.1", port), timeout=5)  # before uvicorn runs
    early.close()
    answers: list[httpx.Response] = []
    client = threading.Thread(
        target=lambda: answers.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=30))
    )
    client.start()  # asks before the server loop exists: queued in the backlog
    server.start()
    try:
        client.join(30)
        assert [a.text for a in answers] == ["hello"]
    finally:
        server.stop()


def test_a_taken_port_fails_the_bind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = FrontServer(hello, "127.0.0.1", port)  # type: ignore[arg-type]
        with pytest.raises(OSError):
            server.bind()

"""A scripted HTTP server on 127.0.0.1 for tool tests (webhooks, http_get, SSRF).

Every request is recorded (method, path, headers, raw body) and answered with the next
queued :class:`Canned` response, or ``200`` with a JSON echo when the queue is empty::

    with ScriptedHTTPServer([Canned(503), Canned(200, {"ok": True})]) as srv:
        ... srv.url ...
        assert len(srv.requests) == 2

``Canned.delay`` holds the answer back (client timeouts); a ``Location`` header with a 30x
status makes a redirect.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass
class Canned:
    status: int = 200
    body: Any = None
    """A dict/list is sent as JSON; bytes/str as they are; ``None`` echoes the request."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ScriptedHTTPServer:
    def __init__(self, responses: Sequence[Canned] = (), *, host: str = "127.0.0.1") -> None:
        self.requests: list[Received] = []
        self._responses: deque[Canned] = deque(responses)
        self._lock = threading.Lock()
        self._host = host
        self._httpd: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def push(self, *responses: Canned) -> None:
        with self._lock:
            self._responses.extend(responses)

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with server._lock:
                    server.requests.append(received)
                    canned = server._responses.popleft() if server._responses else Canned()
                if canned.delay:
                    server._stopping.wait(canned.delay)
                payload = canned.body
                content_type = "application/json"
                if payload is None:
                    payload = {
                        "method": received.method,
                        "path": received.path,
                        "body": body.decode("utf-8", "replace"),
                    }
                if isinstance(payload, dict | list):
                    data = json.dumps(payload).encode()
                else:
                    data = payload.encode() if isinstance(payload, str) else payload
                    content_type = "text/plain; charset=utf-8"
                try:
                    self.send_response(canned.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in canned.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((self._host, 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            self._stopping.set()
            httpd.shutdown()
            httpd.server_close()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

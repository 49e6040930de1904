"""A real HTTP server speaking three embedding APIs, for the remote embedders' tests.

``POST /v1/embeddings`` (OpenAI), ``POST /api/embed`` (Ollama) and ``POST /embed`` (TEI)
answer deterministic vectors derived from each text (so equal texts get equal vectors), in
each API's shape. ``fail_next`` queues HTTP statuses to answer before succeeding again
(to test retries), and every request body is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


def fake_vector(text: str, dimension: int) -> list[float]:
    """A deterministic, non-normalised vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % len(digest)] + i) % 17) - 8.0 for i in range(dimension)]


class EmbeddingServer:
    """Serves the three embedding APIs on 127.0.0.1 in a daemon thread."""

    def __init__(self, dimension: int = 8) -> None:
        self.dimension = dimension
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail_next: deque[int] = deque()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.requests.append((path, body))
        if self.fail_next:
            return self.fail_next.popleft(), {"error": "scripted failure"}
        if path == "/v1/embeddings":
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(t, self.dimension)}
                for i, t in enumerate(body["input"])
            ]
            return 200, {"object": "list", "data": list(reversed(data)), "model": body["model"]}
        if path == "/api/embed":
            return 200, {
                "model": body["model"],
                "embeddings": [fake_vector(t, self.dimension) for t in body["input"]],
            }
        if path == "/embed":
            return 200, [fake_vector(t, self.dimension) for t in body["inputs"]]
        return 404, {"error": f"no route {path}"}

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, data = server.answer(self.path, json.loads(raw))
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

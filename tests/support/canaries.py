"""Canaries for the hostile suite: a TCP listener that counts who connects, and a file path
that must never come to exist.

The listener is plain TCP (not HTTP) on purpose: whatever protocol a leak would speak (HTTP,
MCP over HTTP, a model API, a health probe), opening the connection is already the leak.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Self


class LoopbackListener:
    """Accepts and closes TCP connections on 127.0.0.1, counting them."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


def canary_command(path: Path) -> tuple[str, list[str]]:
    """A stdio MCP ``command`` and ``args`` that would create ``path`` if ever started."""
    return "/bin/sh", ["-c", f"touch {path}; sleep 5"]

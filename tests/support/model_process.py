"""A scripted OpenAI-compatible model server in a subprocess on a fixed loopback port, which
a test or a benchmark kills (SIGKILL, as a crashed backend) and starts again on the same
port, so clients that keep its URL see it go away and come back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ModelProcess:
    """``python -m tests.support.model_servers openai`` answering every chat request with
    ``answer`` (up to ``replies`` of them per start)."""

    def __init__(self, *, answer: str = "Back again.", replies: int = 500) -> None:
        self.port = free_port()
        self._folder = tempfile.TemporaryDirectory(prefix="astromesh-model-")
        self._script = Path(self._folder.name) / "script.json"
        self._script.write_text(json.dumps([{"content": answer}] * replies))
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """The endpoint to configure (``/v1`` included)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Start serving on :attr:`port` and return once it accepts connections."""
        env = dict(os.environ)
        runtime = str(REPO / "layers" / "runtime")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), runtime, env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.model_servers", "openai"),
                *("--script", str(self._script), "--port", str(self.port)),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        if not first.startswith("http://"):
            self.kill()
            raise RuntimeError(f"the model server did not start (said {first!r})")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("the model server does not accept connections")

    def kill(self) -> None:
        """SIGKILL: connections in flight are cut, new ones refused."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def close(self) -> None:
        self.kill()
        self._folder.cleanup()

    def __enter__(self) -> ModelProcess:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

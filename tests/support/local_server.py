"""``astromesh local`` in a subprocess on free ports, for tests and benchmarks.

The command is run as a user runs it (``python -m astromesh.cli local ...``) with this
checkout on ``PYTHONPATH``; it is ready when it prints its ``ready in`` line. Its output
(summary and the functions' logs) is kept for failure messages.

    with LocalServer("--cdk-out", str(out), env={...}) as local:
        httpx.get(f"{local.url}/v1/health")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a developer's shell would have, with this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ASTROMESH_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "layers" / "runtime"), str(REPO)])
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    return {**env, **(extra or {})}


class LocalServer:
    """One ``astromesh local`` process (see the module doc)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.aws_port = free_port()
        self.args = ["--port", str(self.port), "--aws-port", str(self.aws_port), *args]
        self.env = command_env(env)
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.startup_seconds = 0.0
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def client(self, service: str, region: str = REGION) -> Any:
        """A boto3 client of the emulation, as the summary tells a developer to make one."""
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.aws_endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )

    def start(self, timeout: float = 240.0) -> Self:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "astromesh.cli", "local", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"astromesh local did not start:\n{self.output[-6000:]}")
        self.startup_seconds = time.perf_counter() - started
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("ready in "):
                self._ready.set()
        self._ready.set()  # ended: start() sees the exit

    def stop(self) -> int | None:
        """Ctrl+C, as a developer stops it; its exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

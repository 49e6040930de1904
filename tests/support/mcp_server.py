"""A real MCP server for tests, written with the official SDK (``MCPServer``, v1's FastMCP).

Tools: ``add(a, b)``, ``echo(text)``, ``fail(message)`` (an ``isError`` result),
``slow(seconds)``, ``env_value(name)`` (what the server's environment holds) and
``header(name)`` (a request header, over HTTP). Run it as::

    python -m tests.support.mcp_server stdio            # speaks MCP on stdin/stdout
    python -m tests.support.mcp_server http [--port P]   # first stdout line: the /mcp URL

:class:`MCPHttpServer` starts the HTTP form as a subprocess (uvicorn on 127.0.0.1) and stops
it; :func:`stdio_command` is the ``command``/``args`` of the stdio form.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Self

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("astromesh-test", log_level="WARNING")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@app.tool()
def fail(message: str) -> str:
    """Always fails with ``message``."""
    raise ToolError(message)


@app.tool()
async def slow(seconds: float) -> str:
    """Answer after ``seconds``."""
    await asyncio.sleep(seconds)
    return "done"


@app.tool()
def env_value(name: str) -> str:
    """The value of environment variable ``name`` in the server ('' when unset)."""
    return os.environ.get(name, "")


@app.tool()
def header(name: str, ctx: Context) -> str:
    """The value of request header ``name`` (HTTP transport; '' otherwise)."""
    headers = ctx.headers or {}
    return str(headers.get(name.lower(), headers.get(name, "")))


def stdio_command() -> tuple[str, list[str]]:
    """``command`` and ``args`` that start this server over stdio, from any working folder
    (the runtime starts stdio servers in the agents folder) and without ``PYTHONPATH``
    (MCP servers get only a minimal environment): the file is run as a script."""
    return sys.executable, [os.path.abspath(__file__), "stdio"]


def _serve_http(port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    print(f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    config = uvicorn.Config(app.streamable_http_app(), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


class MCPHttpServer:
    """The HTTP form in a subprocess; ``url`` is its streamable HTTP endpoint."""

    def __init__(self) -> None:
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.mcp_server", "http"],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the MCP test server did not start")
        host, port = self.url.split("//")[1].split("/")[0].split(":")
        for _ in range(200):  # uvicorn accepts once started; wait for it
            try:
                socket.create_connection((host, int(port)), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.transport == "stdio":
        app.run()
    else:
        _serve_http(args.port)


if __name__ == "__main__":
    main()

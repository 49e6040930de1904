"""Scripted model servers: real HTTP servers on 127.0.0.1 speaking OpenAI's and Ollama's APIs.

Tests script the model's turns as :class:`Reply` objects; each chat request takes the next
reply from the queue and gets it streamed back with the protocol's real framing (chunked
transfer, SSE ``data:`` events ending in ``data: [DONE]`` for OpenAI, NDJSON for Ollama). The
server runs in a daemon thread, so an in-process test and a subprocess (the CLI) reach it the
same way::

    replies = [Reply("Hello there"), Reply(tool_calls=[("add", {"a": 1})])]
    with ScriptedOpenAIServer(replies) as srv:
        settings = ProviderSettings("openai_compat", "gpt-x", endpoint=srv.url)
        ...
        assert srv.requests[0]["messages"][-1]["content"] == "hi"

When the queue is empty a chat request is answered with HTTP 500 and a message saying so.

Endpoints:
    OpenAI (``url`` = ``http://127.0.0.1:PORT/v1``): ``POST /v1/chat/completions``,
    ``GET /v1/models``.
    Ollama (``url`` = ``http://127.0.0.1:PORT``): ``POST /api/chat``, ``GET /api/tags``, ``GET /``.
    TGI (``url`` = ``http://127.0.0.1:PORT``): ``POST /generate_stream``, ``/generate``,
    ``/v1/chat/completions``, ``/chat_tokenize``; ``GET /health``, ``GET /info``.
    The OpenAI server also answers ``GET /health`` (vLLM's and llama.cpp server's check).
    Health endpoints answer 503 while ``healthy`` is false; ``get_paths`` records every GET.
    A reply's ``headers`` go out with its answer (``Retry-After`` on a scripted 429 or 503).

Tool calls get ids ``call_1``, ``call_2``, ... counted over the server's life (OpenAI only; the
Ollama server sends none, like Ollama). A request with ``"stream": false`` gets one JSON body.

Run standalone (the first line of stdout is the URL; serves until killed)::

    python -m tests.support.model_servers openai --script replies.json

where ``replies.json`` is a list of :class:`Reply` fields as JSON objects, tool calls written
as ``[name, arguments]`` pairs or ``{"name": ..., "arguments": ...}`` objects.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self

ToolArguments = dict[str, Any] | str
"""Arguments of a scripted tool call; a string is sent verbatim (to script invalid JSON)."""


@dataclass
class Reply:
    """One scripted model turn.

    Attributes:
        content: the answer text, streamed in ``chunk_size`` pieces. For an error reply
            (``status`` != 200) it is the error message (a default one when empty).
        tool_calls: ``(name, arguments)`` pairs the model calls this turn.
        tokens_in / tokens_out: the usage the server reports.
        status: non-200 answers with an error body in the protocol's shape and this status.
        delay: seconds to wait before answering (to provoke client timeouts).
        chunk_delay: seconds to wait before each stream chunk after the first (a slow model;
            a timeout in the middle of a stream).
        cut_after_chunks: close the connection after this many stream chunks (SSE events or
            NDJSON lines), without finishing the chunked body: a cut stream. A non-streamed
            answer is cut half-way through its body (any value).
        include_usage: whether usage is reported at all (OpenAI also needs the request's
            ``stream_options.include_usage``).
        finish_reason: override the reported finish reason (default ``stop``, or
            ``tool_calls`` for OpenAI when there are tool calls).
        stream_error: after the content, send this error inside the stream (an SSE ``error``
            event / an ``{"error": ...}`` line) instead of finishing normally; a non-streamed
            answer is then the protocol's error body with status 200.
        stream: ``False`` answers with one JSON body even when the request asked to stream
            (a server that ignores ``stream: true``); ``None`` follows the request.
        headers: extra response headers (``{"Retry-After": "2"}`` on a 429 or 503).
        body: a non-streamed answer's body, sent verbatim with status 200 and
            ``content_type`` (to script malformed or hostile answers); the request's
            ``stream`` flag is then ignored.
        content_type: the content type sent with ``body``.
    """

    content: str = ""
    tool_calls: list[tuple[str, ToolArguments]] = field(default_factory=list)
    tokens_in: int = 11
    tokens_out: int = 7
    status: int = 200
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after_chunks: int | None = None
    include_usage: bool = True
    finish_reason: str | None = None
    stream_error: str | None = None
    stream: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | None = None
    content_type: str = "application/json"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        """A reply from its JSON form (as in ``--script`` files); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Reply fields: {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        values["tool_calls"] = [_tool_call_pair(call) for call in data.get("tool_calls", [])]
        return cls(**values)

    def error_message(self) -> str:
        return self.content or f"scripted error {self.status}"


def _tool_call_pair(call: Any) -> tuple[str, ToolArguments]:
    if isinstance(call, dict):
        return call["name"], call.get("arguments", {})
    name, arguments = call
    return name, arguments


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _arguments_text(arguments: ToolArguments) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


@dataclass
class _Answer:
    """What the handler writes: a status, a content type and either a body or stream chunks."""

    status: int
    content_type: str
    body: bytes = b""
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _ScriptedServer:
    """The protocol-independent part: queue, recording, threading and HTTP framing."""

    name: ClassVar[str]
    chat_path: ClassVar[str]
    stream_content_type: ClassVar[str]
    base_path: ClassVar[str] = ""
    stream_default: ClassVar[bool] = False
    """Whether a request without a ``stream`` field is streamed (Ollama's default is yes)."""

    def __init__(
        self, replies: Sequence[Reply] | None = None, *, chunk_size: int = 4, port: int = 0
    ) -> None:
        self.chunk_size = chunk_size
        self.requests: list[dict[str, Any]] = []
        """JSON bodies of the chat requests received, in order."""
        self.request_headers: list[dict[str, str]] = []
        """Headers of those requests (lower-case names), parallel to :attr:`requests`."""
        self.healthy = True
        """Set false to make the health endpoint answer 503."""
        self.connection_count = 0
        """TCP connections accepted so far (to check that clients keep connections alive)."""
        self.request_paths: list[str] = []
        """The path of each chat request, parallel to :attr:`requests` (TGI has several)."""
        self.get_paths: list[str] = []
        """The path of each GET received (health checks), in order."""
        self._replies: deque[Reply] = deque(replies or [])
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._call_ids = itertools.count(1)

    # -- public API ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to configure as the provider's endpoint."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._replies)

    def push(self, *replies: Reply) -> None:
        """Queue more replies, answered after those already queued."""
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> Self:
        """Bind 127.0.0.1 (port 0 = any free port) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.scripted = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop to notice
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; delayed replies still waiting are abandoned."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- request handling (called from the handler threads) -----------------------------------

    def _accepts_post(self, path: str) -> bool:
        """Whether ``path`` is one of this server's POST routes (others answer 404)."""
        return path == self.chat_path

    def _handle_post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[Reply, _Answer]:
        """Answer a POST to an accepted route; servers with several routes override this."""
        return self._handle_chat(body, headers)

    def _handle_chat(
        self, body: dict[str, Any], headers: dict[str, str], path: str | None = None
    ) -> tuple[Reply, _Answer]:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
            self.request_paths.append(path or self.chat_path)
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            message = (
                f"{type(self).__name__}: no scripted reply left for request "
                f"#{len(self.requests)}; push() more replies"
            )
            return Reply(), self._error(500, message)
        if reply.delay:
            self._stopping.wait(reply.delay)
        answer = self._answer(path, reply, body)
        answer.headers.update(reply.headers)
        return reply, answer

    def _answer(self, path: str | None, reply: Reply, body: dict[str, Any]) -> _Answer:
        if reply.status != 200:
            return self._error(reply.status, reply.error_message())
        if reply.body is not None:
            raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
            return _Answer(200, reply.content_type, body=raw)
        streaming = reply.stream
        if streaming is None:
            streaming = self._wants_stream(path, body)
        if streaming:
            chunks = list(self._stream_chunks_for(path, reply, body))
            return _Answer(200, self.stream_content_type, chunks=chunks)
        if reply.stream_error is not None:
            return self._error(200, reply.stream_error)
        return _json_answer(200, self._completion_for(path, reply, body))

    def _wants_stream(self, path: str | None, body: dict[str, Any]) -> bool:
        return bool(body.get("stream", self.stream_default))

    def _stream_chunks_for(
        self, path: str | None, reply: Reply, request: dict[str, Any]
    ) -> Iterator[bytes]:
        return self._stream_chunks(reply, request)

    def _completion_for(
        self, path: str | None, reply: Reply, request: dict[str, Any]
    ) -> dict[str, Any]:
        return self._completion(reply, request)

    def _next_call_id(self) -> str:
        with self._lock:
            return f"call_{next(self._call_ids)}"

    # -- protocol hooks -----------------------------------------------------------------------

    def _handle_get(self, path: str) -> _Answer | None:
        raise NotImplementedError

    def _error(self, status: int, message: str) -> _Answer:
        raise NotImplementedError

    def _stream_chunks(self, reply: Reply, request: dict[str, Any]) -> Iterator[bytes]:
        raise NotImplementedError

    def _completion(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _json_answer(status: int, data: Any) -> _Answer:
    return _Answer(status, "application/json", body=json.dumps(data).encode())


class ScriptedOpenAIServer(_ScriptedServer):
    """An OpenAI-compatible ``/v1/chat/completions`` server answering scripted replies."""

    name = "openai"
    base_path = "/v1"
    chat_path = "/v1/chat/completions"
    stream_content_type = "text/event-stream"

    def _handle_get(self, path: str) -> _Answer | None:
        if path == "/health":
            # vLLM and llama.cpp's server answer their health check at the root.
            if not self.healthy:
                return self._error(503, "unhealthy (scripted)")
            return _json_answer(200, {"status": "ok"})
        if path != "/v1/models":
            return None
        if not self.healthy:
            return self._error(503, "unhealthy (scripted)")
        return _json_answer(
            200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]}
        )

    def _error(self, status: int, message: str) -> _Answer:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return _json_answer(status, {"error": {"message": message, "type": kind, "code": None}})

    def _chunk(self, request: dict[str, Any], **fields: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.get("model", "scripted"),
            **fields,
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def _delta(self, request: dict[str, Any], delta: dict[str, Any]) -> bytes:
        return self._chunk(request, choices=[{"index": 0, "delta": delta, "finish_reason": None}])

    def _stream_chunks(self, reply: Reply, request: dict[str, Any]) -> Iterator[bytes]:
        yield self._delta(request, {"role": "assistant", "content": ""})
        for piece in _pieces(reply.content, self.chunk_size):
            yield self._delta(request, {"content": piece})
        for index, (name, arguments) in enumerate(reply.tool_calls):
            yield from self._tool_call_deltas(request, index, name, arguments)
        if reply.stream_error is not None:
            error = {"message": reply.stream_error, "type": "server_error", "code": None}
            yield self._chunk(request, error=error)
            yield b"data: [DONE]\n\n"
            return
        choice = {"index": 0, "delta": {}, "finish_reason": self._finish_reason(reply)}
        yield self._chunk(request, choices=[choice])
        stream_options = request.get("stream_options") or {}
        if reply.include_usage and stream_options.get("include_usage"):
            yield self._chunk(request, choices=[], usage=_openai_usage(reply))
        yield b"data: [DONE]\n\n"

    def _tool_call_deltas(
        self, request: dict[str, Any], index: int, name: str, arguments: ToolArguments
    ) -> Iterator[bytes]:
        head = {
            "index": index,
            "id": self._next_call_id(),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        yield self._delta(request, {"tool_calls": [head]})
        for piece in _pieces(_arguments_text(arguments), self.chunk_size):
            fragment = {"index": index, "function": {"arguments": piece}}
            yield self._delta(request, {"tool_calls": [fragment]})

    def _completion(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self._next_call_id(),
                    "type": "function",
                    "function": {"name": name, "arguments": _arguments_text(arguments)},
                }
                for name, arguments in reply.tool_calls
            ]
        completion: dict[str, Any] = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "scripted"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": self._finish_reason(reply)}
            ],
        }
        if reply.include_usage:
            completion["usage"] = _openai_usage(reply)
        return completion

    @staticmethod
    def _finish_reason(reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _openai_usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.tokens_in,
        "completion_tokens": reply.tokens_out,
        "total_tokens": reply.tokens_in + reply.tokens_out,
    }


class ScriptedOllamaServer(_ScriptedServer):
    """An Ollama ``/api/chat`` server answering scripted replies (NDJSON stream)."""

    name = "ollama"
    chat_path = "/api/chat"
    stream_content_type = "application/x-ndjson"
    stream_default = True

    def _handle_get(self, path: str) -> _Answer | None:
        if path == "/":
            return _Answer(200, "text/plain", body=b"Ollama is running")
        if path != "/api/tags":
            return None
        if not self.healthy:
            return self._error(503, "unhealthy (scripted)")
        return _json_answer(200, {"models": [{"name": "scripted:latest", "model": "scripted"}]})

    def _error(self, status: int, message: str) -> _Answer:
        return _json_answer(status, {"error": message})

    def _line(self, request: dict[str, Any], **fields: Any) -> bytes:
        line = {
            "model": request.get("model", "scripted"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **fields,
        }
        return json.dumps(line).encode() + b"\n"

    def _stream_chunks(self, reply: Reply, request: dict[str, Any]) -> Iterator[bytes]:
        for piece in _pieces(reply.content, self.chunk_size):
            message = {"role": "assistant", "content": piece}
            yield self._line(request, message=message, done=False)
        if reply.tool_calls:
            message = {"role": "assistant", "content": "", "tool_calls": _ollama_calls(reply)}
            yield self._line(request, message=message, done=False)
        if reply.stream_error is not None:
            yield json.dumps({"error": reply.stream_error}).encode() + b"\n"
            return
        yield self._line(
            request, message={"role": "assistant", "content": ""}, **_ollama_final(reply)
        )

    def _completion(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = _ollama_calls(reply)
        return {
            "model": request.get("model", "scripted"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": message,
            **_ollama_final(reply),
        }


def _ollama_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"function": {"name": name, "arguments": arguments}} for name, arguments in reply.tool_calls
    ]


def _ollama_final(reply: Reply) -> dict[str, Any]:
    final: dict[str, Any] = {"done": True, "done_reason": reply.finish_reason or "stop"}
    if reply.include_usage:
        final.update(prompt_eval_count=reply.tokens_in, eval_count=reply.tokens_out)
    return final


class ScriptedTGIServer(_ScriptedServer):
    """A Hugging Face TGI server answering scripted replies.

    ``POST /generate_stream`` streams TGI's SSE token events (no ``[DONE]``; the last event
    carries ``generated_text`` and ``details``), ``POST /generate`` answers one JSON body,
    ``POST /v1/chat/completions`` is the messages API (OpenAI framing), and
    ``POST /chat_tokenize`` applies :attr:`chat_template` (404 when it is ``None``, as on TGI
    before 2.2.1). ``GET /health`` and ``GET /info`` answer too.

    Reply fields map as: ``tokens_out`` -> ``details.generated_tokens`` (``include_usage=False``
    sends ``details: null``), ``finish_reason`` -> ``details.finish_reason`` (TGI's vocabulary:
    ``eos_token``, ``length``, ``stop_sequence``), ``stream_error`` -> an ``{"error",
    "error_type": "generation"}`` event.
    """

    name = "tgi"
    chat_path = "/generate_stream"
    stream_content_type = "text/event-stream"
    POST_PATHS = ("/generate_stream", "/generate", "/v1/chat/completions", "/chat_tokenize")

    def __init__(
        self,
        replies: Sequence[Reply] | None = None,
        *,
        chunk_size: int = 4,
        port: int = 0,
        chat_template: str | None = "[{role}] {content}\n",
    ) -> None:
        super().__init__(replies, chunk_size=chunk_size, port=port)
        self.chat_template = chat_template
        """Per-message format applied by ``/chat_tokenize`` (``None``: no such route)."""
        self.tokenize_requests: list[dict[str, Any]] = []
        """Bodies received by ``/chat_tokenize`` (they take no scripted reply)."""
        self._openai = ScriptedOpenAIServer(chunk_size=chunk_size)

    def _accepts_post(self, path: str) -> bool:
        return path in self.POST_PATHS

    def _handle_post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[Reply, _Answer]:
        if path == "/chat_tokenize":
            with self._lock:
                self.tokenize_requests.append(body)
            if self.chat_template is None:
                return Reply(), self._error(404, "no route /chat_tokenize (scripted old TGI)")
            text = "".join(
                self.chat_template.format(role=m.get("role"), content=m.get("content"))
                for m in body.get("messages", [])
            )
            tokens = [
                {"id": i, "text": word, "start": 0, "stop": 0}
                for i, word in enumerate(text.split())
            ]
            return Reply(), _json_answer(200, {"tokenize_response": tokens, "templated_text": text})
        return self._handle_chat(body, headers, path)

    def _handle_get(self, path: str) -> _Answer | None:
        if path == "/health":
            if not self.healthy:
                return self._error(503, "unhealthy (scripted)")
            return _Answer(200, "application/json", body=b"")
        if path == "/info":
            return _json_answer(200, {"model_id": "scripted", "max_total_tokens": 4096})
        return None

    def _error(self, status: int, message: str) -> _Answer:
        kind = "validation" if status == 422 else "generation" if status >= 500 else "error"
        return _json_answer(status, {"error": message, "error_type": kind})

    def _wants_stream(self, path: str | None, body: dict[str, Any]) -> bool:
        if path == "/v1/chat/completions":
            return bool(body.get("stream", False))
        return path == "/generate_stream"

    def _stream_chunks_for(
        self, path: str | None, reply: Reply, request: dict[str, Any]
    ) -> Iterator[bytes]:
        if path == "/v1/chat/completions":
            return self._openai._stream_chunks(reply, request)
        return self._stream_chunks(reply, request)

    def _completion_for(
        self, path: str | None, reply: Reply, request: dict[str, Any]
    ) -> dict[str, Any]:
        if path == "/v1/chat/completions":
            return self._openai._completion(reply, request)
        return self._completion(reply, request)

    @staticmethod
    def _event(**fields: Any) -> bytes:
        return b"data:" + json.dumps(fields).encode() + b"\n\n"

    def _stream_chunks(self, reply: Reply, request: dict[str, Any]) -> Iterator[bytes]:
        pieces = _pieces(reply.content, self.chunk_size)
        for index, piece in enumerate(pieces):
            token = {"id": index, "text": piece, "logprob": -0.5, "special": False}
            yield self._event(index=index, token=token, generated_text=None, details=None)
        if reply.stream_error is not None:
            yield self._event(error=reply.stream_error, error_type="generation")
            return
        eos = {"id": 2, "text": "</s>", "logprob": -0.1, "special": True}
        yield self._event(
            index=len(pieces),
            token=eos,
            generated_text=reply.content,
            details=self._details(reply),
        )

    def _completion(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        return {"generated_text": reply.content, "details": self._details(reply)}

    @staticmethod
    def _details(reply: Reply) -> dict[str, Any] | None:
        if not reply.include_usage:
            return None
        return {
            "finish_reason": reply.finish_reason or "eos_token",
            "generated_tokens": reply.tokens_out,
            "seed": None,
        }


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that knows which scripted server it serves."""

    daemon_threads = True
    scripted: _ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client drops its connection (timeouts, cut streams do that)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 framing for the scripted servers: JSON bodies and chunked streams."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """Send each stream chunk at once, as model servers do: with Nagle's algorithm the client's
    delayed ACK holds every small chunk after the first for ~40 ms."""

    @property
    def scripted(self) -> _ScriptedServer:
        assert isinstance(self.server, _HTTPServer)
        return self.server.scripted

    def setup(self) -> None:
        super().setup()
        with self.scripted._lock:
            self.scripted.connection_count += 1

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests print their own diagnostics."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.scripted._lock:
            self.scripted.get_paths.append(path)
        answer = self.scripted._handle_get(path)
        self._send(answer or self._not_found())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.split("?")[0]
        if not self.scripted._accepts_post(path):
            self._send(self._not_found())
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(self.scripted._error(400, "request body is not JSON"))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply, answer = self.scripted._handle_post(path, body, headers)
        self._send(answer, reply)

    def _not_found(self) -> _Answer:
        return self.scripted._error(404, f"no route for {self.command} {self.path}")

    def _send(self, answer: _Answer, reply: Reply | None = None) -> None:
        try:
            if answer.chunks is None:
                self._send_body(answer, reply is not None and reply.cut_after_chunks is not None)
            else:
                self._send_chunked(answer, answer.chunks, reply or Reply())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _send_body(self, answer: _Answer, cut: bool = False) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut:
            self.wfile.write(answer.body[: len(answer.body) // 2])
            self._cut()
            return
        self.wfile.write(answer.body)

    def _send_chunked(self, answer: _Answer, chunks: list[bytes], reply: Reply) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for sent, chunk in enumerate(chunks):
            if reply.cut_after_chunks is not None and sent >= reply.cut_after_chunks:
                self._cut()
                return
            if sent and reply.chunk_delay:
                self.scripted._stopping.wait(reply.chunk_delay)
            self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _cut(self) -> None:
        """Drop the connection mid-body, as a crashed or restarted backend would."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


SERVERS: dict[str, type[_ScriptedServer]] = {
    "openai": ScriptedOpenAIServer,
    "ollama": ScriptedOllamaServer,
    "tgi": ScriptedTGIServer,
}


def load_script(path: str | Path) -> list[Reply]:
    """Read a ``--script`` file: a JSON list of :class:`Reply` field objects."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of replies")
    return [Reply.from_dict(item) for item in data]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a scripted model until SIGTERM/SIGINT; print the base URL as stdout's first line."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.model_servers")
    parser.add_argument("protocol", choices=sorted(SERVERS))
    parser.add_argument("--script", help="JSON file: a list of Reply objects")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    parser.add_argument("--chunk-size", type=int, default=4)
    args = parser.parse_args(argv)
    replies = load_script(args.script) if args.script else []
    server = SERVERS[args.protocol](replies, chunk_size=args.chunk_size, port=args.port)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with server:
        print(server.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""API Gateway in front of the emulated functions: one local port for REST and WebSocket.

- HTTP: each request is matched to the REST API's resources from the templates (the
  channels' webhook paths go to their own functions, everything else to ``api`` through
  ``/{proxy+}``), sent as a proxy event, and the function's proxy response is the HTTP
  response. A function error is API Gateway's 502, an invocation longer than the
  integration's 29 s its 504. A leading ``/<stage>`` is accepted and dropped, so both
  ``/v1/...`` and the deployed ``/dev/v1/...`` paths work.
- WebSocket (any path): the upgrade is the ``$connect`` event (a non-2xx answer refuses the
  handshake with that status), each message a ``$default`` event (or the route named by its
  ``action``, when the API has one), the close a ``$disconnect`` event. ``post_to_connection``
  on the emulation's Management API writes to the real socket; a connection that is gone
  answers 410, as in AWS.

Loopback only by default (see the README): the front has no TLS and is meant for the machine
it runs on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from astromesh.local import events
from astromesh.local.emulation import Emulation
from astromesh.local.moto_hooks import GoneException
from astromesh.local.templates import RestRoute

INTEGRATION_TIMEOUT_SECONDS = 29.0
MAX_BODY_BYTES = 10 * 1024 * 1024
"""API Gateway's own request limit (the app refuses less: ``ASTROMESH_MAX_BODY_BYTES``)."""
POST_TIMEOUT_SECONDS = 10.0

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _json(status: int, message: str) -> events.ProxyResponse:
    body = json.dumps({"message": message}).encode()
    return events.ProxyResponse(status, [("content-type", "application/json")], body)


class _Socket:
    """A connected client: frames are sent on the server's loop, one at a time."""

    def __init__(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self._send = send
        self.loop = loop
        self.open = True
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._lock:
            if self.open:
                await self._send(message)

    def post(self, data: bytes) -> None:
        """From any thread: deliver ``data`` as a frame, waiting until it is written."""
        try:
            text = data.decode("utf-8")
            message = {"type": "websocket.send", "text": text}
        except UnicodeDecodeError:
            message = {"type": "websocket.send", "bytes": data}
        future = asyncio.run_coroutine_threadsafe(self.send(message), self.loop)
        future.result(timeout=POST_TIMEOUT_SECONDS)


class Front:
    """The ASGI app (see the module doc) over ``emulation``."""

    def __init__(
        self, emulation: Emulation, integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS
    ) -> None:
        self.emulation = emulation
        deployment = emulation.deployment
        self.account = deployment.account
        self.rest_stage = deployment.rest_stage or deployment.stage
        self.ws_stage = deployment.ws_stage or deployment.stage
        self.routes = deployment.rest_routes
        self.ws_routes = deployment.ws_routes
        self.integration_timeout = integration_timeout
        self._sockets: dict[str, _Socket] = {}
        self._lock = threading.Lock()
        emulation.attach_websocket(self._post, self._delete)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    # -- REST -----------------------------------------------------------------------------------

    def match(self, path: str, method: str) -> RestRoute | None:
        """The REST API's method for ``path``: an exact resource first, then the longest
        greedy ``{proxy+}`` one; None where API Gateway answers 403."""
        exact = [route for route in self.routes if route.path == path]
        if exact:
            return next((r for r in exact if r.method in (method, "ANY")), None)
        best: RestRoute | None = None
        for route in self.routes:
            if not route.path.endswith("{proxy+}") or route.method not in (method, "ANY"):
                continue
            prefix = route.path[: -len("{proxy+}")]
            longer = best is None or len(route.path) > len(best.path)
            if path.startswith(prefix) and len(path) > len(prefix) and longer:
                best = route
        return best

    def _strip_stage(self, path: str) -> str:
        prefix = f"/{self.rest_stage}"
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
        return path

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                await self._respond(send, _json(413, "Request Too Long"))
                return
            if not message.get("more_body"):
                break
        request = self._request(scope, body)
        route = self.match(request.path, request.method)
        if route is None:
            await self._respond(send, _json(403, "Missing Authentication Token"))
            return
        event = events.rest_event(request, route.path, self.rest_stage, self.account)
        try:
            invocation = await asyncio.wait_for(
                asyncio.to_thread(self.emulation.invoke, route.function, event),
                self.integration_timeout,
            )
        except TimeoutError:
            await self._respond(send, _json(504, "Endpoint request timed out"))
            return
        if invocation.exception is not None:
            await self._respond(send, events.BAD_GATEWAY)
            return
        await self._respond(send, events.proxy_response(invocation.answer))

    def _request(self, scope: dict[str, Any], body: bytes) -> events.Request:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        host = next((v for k, v in headers if k.lower() == "host"), "127.0.0.1")
        client = scope.get("client") or ("127.0.0.1", 0)
        return events.Request(
            method=scope.get("method", "GET"),
            path=self._strip_stage(scope["path"]),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            source_ip=client[0],
            host=host,
        )

    @staticmethod
    async def _respond(send: Send, response: events.ProxyResponse) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        if not any(k == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    # -- WebSocket ------------------------------------------------------------------------------

    async def _websocket(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        request = self._request(scope, b"")
        user_agent = next((v for k, v in request.headers if k.lower() == "user-agent"), None)
        connection = events.Connection(
            events.new_connection_id(),
            self.ws_stage,
            request.host,
            request.source_ip,
            user_agent,
            events.connected_at(),
        )
        connect = self.ws_routes.get("$connect")
        if connect is not None:
            event = events.connect_event(connection, request.headers, request.query)
            invocation = await asyncio.to_thread(self.emulation.invoke, connect, event)
            answer = invocation.answer if invocation.exception is None else None
            status = answer.get("statusCode") if isinstance(answer, dict) else 502
            if not isinstance(status, int) or not 200 <= status < 300:
                refusal = events.proxy_response(answer) if isinstance(status, int) else None
                await self._refuse(scope, send, refusal or events.BAD_GATEWAY)
                return
        socket = _Socket(send, asyncio.get_running_loop())
        with self._lock:
            self._sockets[connection.connection_id] = socket
        await send({"type": "websocket.accept"})
        pending: set[asyncio.Task[None]] = set()
        code, reason = 1005, ""
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    code = int(message.get("code", 1005))
                    reason = str(message.get("reason") or "")
                    break
                if message["type"] != "websocket.receive":
                    continue
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                task = asyncio.create_task(self._message(connection, socket, text))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            socket.open = False
            with self._lock:
                self._sockets.pop(connection.connection_id, None)
            disconnect = self.ws_routes.get("$disconnect")
            if disconnect is not None:
                event = events.disconnect_event(connection, code, reason)
                await asyncio.to_thread(self.emulation.invoke, disconnect, event)

    async def _message(self, connection: events.Connection, socket: _Socket, text: str) -> None:
        route = "$default"
        try:
            action = json.loads(text).get("action")
        except (json.JSONDecodeError, AttributeError):
            action = None
        if isinstance(action, str) and action in self.ws_routes:
            route = action
        function = self.ws_routes.get(route)
        if function is None:
            return
        event = events.message_event(connection, route, text)
        invocation = await asyncio.to_thread(self.emulation.invoke, function, event)
        if invocation.exception is not None:
            context = event["requestContext"]
            await socket.send(
                {
                    "type": "websocket.send",
                    "text": json.dumps(
                        {
                            "message": "Internal server error",
                            "connectionId": connection.connection_id,
                            "requestId": context["requestId"],
                        }
                    ),
                }
            )

    @staticmethod
    async def _refuse(scope: dict[str, Any], send: Send, refusal: events.ProxyResponse) -> None:
        """Refuse the handshake with ``$connect``'s answer (as API Gateway does for a non-2xx
        one) where the server can answer HTTP to an upgrade; else a policy close."""
        if "websocket.http.response" in scope.get("extensions", {}):
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": refusal.status,
                    "headers": headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": refusal.body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    # -- the Management API's side ----------------------------------------------------------

    def _post(self, connection_id: str, data: bytes) -> None:
        with self._lock:
            socket = self._sockets.get(connection_id)
        if socket is None or not socket.open:
            raise GoneException(connection_id)
        try:
            socket.post(data)
        except Exception as exc:
            raise GoneException(connection_id) from exc

    def _delete(self, connection_id: str) -> None:
        with self._lock:
            socket = self._sockets.get(connection_id)
        if socket is None:
            raise GoneException(connection_id)
        asyncio.run_coroutine_threadsafe(
            socket.send({"type": "websocket.close", "code": 1000}), socket.loop
        )
        socket.open = False


class FrontServer:
    """The front on uvicorn: :meth:`run` in this thread, or :meth:`start` in one of its own."""

    def __init__(self, front: Front, host: str, port: int) -> None:
        config = uvicorn.Config(
            front, host=host, port=port, log_level="warning", lifespan="off", ws="websockets-sansio"
        )
        self.server = uvicorn.Server(config)
        self.host, self.port = host, port
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        """Listen now, before :meth:`run`: a client told the front is ready (the CLI's
        ``ready in`` line) may connect at once, and its connection waits in the backlog
        until uvicorn serves it instead of being refused.

        Raises:
            OSError: the address cannot be bound (the port is taken).
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        self._socket = sock

    def run(self) -> None:
        self.server.run(sockets=[self._socket] if self._socket is not None else None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="front", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the front did not start (is the port taken?)")
            self._thread.join(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

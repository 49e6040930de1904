"""Webhook tools against a real HTTP receiver on 127.0.0.1: body, signature (recomputed by
the receiver), retries for idempotent methods only, timeouts, SSRF, configuration errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.tools.base import ToolContext
from astromesh.tools.factory import build_tool
from astromesh.tools.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookTool,
    sign,
    verify_signature,
)
from tests.support.http_receivers import Canned, Received, ScriptedHTTPServer

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")
SECRET = "s3cr3t-for-tests"
ENV = {"HOOK_SECRET": SECRET}


def webhook(url: str, env: dict[str, str] | None = None, **fields) -> WebhookTool:
    cfg = TypeAdapter(AnyTool).validate_python(
        {"type": "webhook", "name": "hook", "url": url, "allow_private_network": True, **fields}
    )
    tool = build_tool(cfg, env=ENV if env is None else env)
    assert isinstance(tool, WebhookTool)
    tool.base_backoff_seconds = 0.01
    return tool


@pytest.fixture
def receiver():
    with ScriptedHTTPServer() as server:
        yield server


def receiver_verifies(request: Received, payload: bytes) -> bool:
    """What a receiver does: recompute HMAC-SHA256 over "<timestamp>." + payload."""
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + payload, hashlib.sha256)
    return hmac.compare_digest(
        "sha256=" + expected.hexdigest(), request.headers[SIGNATURE_HEADER.lower()]
    )


async def test_post_sends_the_arguments_as_a_signed_json_body(receiver):
    receiver.push(Canned(200, {"created": 7}))
    tool = webhook(receiver.url + "/orders", secret_env="HOOK_SECRET", headers={"X-App": "t"})
    result = await tool.call({"item": "book", "qty": 2, "note": "ñ"}, CTX)
    await tool.aclose()
    assert result.ok and result.data == {"created": 7}
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/orders"
    assert request.json() == {"item": "book", "qty": 2, "note": "ñ"}
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-app"] == "t"
    assert abs(int(request.headers[TIMESTAMP_HEADER.lower()]) - time.time()) < 5
    assert receiver_verifies(request, request.body)
    assert verify_signature(
        SECRET,
        timestamp=request.headers[TIMESTAMP_HEADER.lower()],
        signature=request.headers[SIGNATURE_HEADER.lower()],
        payload=request.body,
    )


async def test_a_tampered_body_or_old_timestamp_fails_verification(receiver):
    tool = webhook(receiver.url, secret_env="HOOK_SECRET")
    await tool.call({"amount": 10}, CTX)
    await tool.aclose()
    [request] = receiver.requests
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    signature = request.headers[SIGNATURE_HEADER.lower()]
    assert not verify_signature(
        SECRET, timestamp=timestamp, signature=signature, payload=b'{"amount":1000}'
    )
    assert not verify_signature(
        "wrong", timestamp=timestamp, signature=signature, payload=request.body
    )
    assert not verify_signature(
        SECRET,
        timestamp=timestamp,
        signature=signature,
        payload=request.body,
        now=float(timestamp) + 3600,
    )
    old = str(int(timestamp) - 3600)
    assert not verify_signature(
        SECRET, timestamp=old, signature=sign(SECRET, timestamp, request.body), payload=b""
    )


async def test_get_sends_arguments_as_query_and_signs_the_query(receiver):
    tool = webhook(receiver.url + "/search", method="GET", secret_env="HOOK_SECRET")
    result = await tool.call({"q": "red shoes", "filters": {"size": 42}}, CTX)
    await tool.aclose()
    assert result.ok
    [request] = receiver.requests
    assert request.method == "GET" and request.body == b""
    query = urlsplit(request.path).query
    assert "q=red+shoes" in query
    assert receiver_verifies(request, query.encode())


async def test_without_a_secret_no_signature_is_sent(receiver):
    tool = webhook(receiver.url)
    await tool.call({}, CTX)
    await tool.aclose()
    assert SIGNATURE_HEADER.lower() not in receiver.requests[0].headers


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_idempotent_methods_are_retried_until_success(receiver, method):
    receiver.push(Canned(503, "busy"), Canned(502, "bad gateway"), Canned(200, {"ok": True}))
    tool = webhook(receiver.url, method=method, secret_env="HOOK_SECRET")
    result = await tool.call({"id": 1}, CTX)
    await tool.aclose()
    assert result.ok and result.data == {"ok": True}
    assert [r.method for r in receiver.requests] == [method] * 3
    for request in receiver.requests:  # every attempt is signed afresh
        assert receiver_verifies(request, request.body or urlsplit(request.path).query.encode())


async def test_retries_are_bounded(receiver):
    receiver.push(*[Canned(503, "busy")] * 5)
    tool = webhook(receiver.url, method="PUT")
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert not result.ok and "HTTP 503" in result.content
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_methods_are_never_retried(receiver, method):
    receiver.push(Canned(503, "busy"), Canned(200, {"ok": True}))
    tool = webhook(receiver.url, method=method)
    result = await tool.call({"charge": 5}, CTX)
    await tool.aclose()
    assert not result.ok and "HTTP 503" in result.content and "busy" in result.content
    assert len(receiver.requests) == 1


async def test_client_errors_are_not_retried(receiver):
    receiver.push(Canned(404, {"error": "no such order"}))
    tool = webhook(receiver.url, method="GET")
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert not result.ok and "HTTP 404" in result.content and "no such order" in result.content
    assert len(receiver.requests) == 1


async def test_retry_after_is_honoured(receiver):
    receiver.push(Canned(429, "slow down", headers={"Retry-After": "0.3"}), Canned(200, "fine"))
    tool = webhook(receiver.url, method="GET")
    started = time.monotonic()
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert result.ok and result.data == "fine"
    assert time.monotonic() - started >= 0.3


async def test_a_slow_endpoint_times_out_as_a_failed_result(receiver):
    receiver.push(Canned(200, "late", delay=1.5))
    tool = webhook(receiver.url, timeout_seconds=0.2)
    started = time.monotonic()
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert not result.ok and "timed out" in result.content
    assert time.monotonic() - started < 1.2
    assert len(receiver.requests) == 1


async def test_timeouts_of_idempotent_calls_are_retried(receiver):
    receiver.push(Canned(200, "late", delay=1.0), Canned(200, "on time"))
    tool = webhook(receiver.url, method="GET", timeout_seconds=0.3)
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert result.ok and result.data == "on time"
    receiver.wait_for(2)
    assert len(receiver.requests) == 2


async def test_private_addresses_are_refused_unless_allowed(receiver):
    with pytest.raises(ConfigurationError, match="loopback"):
        webhook(receiver.url, allow_private_network=False)  # a literal: refused at build
    tool = webhook(f"http://localhost:{receiver.port}/", allow_private_network=False)
    result = await tool.call({"x": 1}, CTX)
    await tool.aclose()
    assert not result.ok
    assert "loopback address" in result.content and "allow_private_network" in result.content
    assert receiver.requests == []


def test_a_metadata_url_is_refused_when_the_agent_is_built():
    with pytest.raises(ConfigurationError, match="cloud metadata"):
        webhook("http://169.254.169.254/latest/meta-data/", allow_private_network=True)
    with pytest.raises(ConfigurationError, match="private address"):
        webhook("http://10.0.0.8/hook", allow_private_network=False)


def test_a_missing_secret_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="secret_env 'HOOK_SECRET' is not set"):
        webhook("http://127.0.0.1:1/", env={}, secret_env="HOOK_SECRET")


async def test_a_refused_connection_is_a_failed_result(closed_port_url):
    tool = webhook(closed_port_url, method="POST")
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert not result.ok and "failed after 1 attempt" in result.content


async def test_the_exit_stack_closes_the_pooled_client(receiver):
    cfg = TypeAdapter(AnyTool).validate_python(
        {"type": "webhook", "name": "hook", "url": receiver.url, "allow_private_network": True}
    )
    async with AsyncExitStack() as stack:
        tool = build_tool(cfg, env={}, exit_stack=stack)
        assert (await tool.call({}, CTX)).ok
        client = tool._client
        assert client is not None and not client.is_closed
    assert client.is_closed


async def test_the_model_sees_json_text_and_the_caller_gets_data(receiver):
    receiver.push(Canned(200, {"items": [1, 2]}))
    tool = webhook(receiver.url)
    result = await tool.call({}, CTX)
    await tool.aclose()
    assert json.loads(result.content) == {"items": [1, 2]}

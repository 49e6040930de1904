"""Upstream's network builtins (``http_request``, ``web_scrape``, ``send_webhook``) and clock
names (``datetime_now``, ``get_current_time``), against real HTTP servers on loopback.

Loopback is private, so the tools here are built with ``allow_private_network`` (what an
operator's file may say); the refusals without it, and for registered agents, are in
``tests/security/test_builtin_policy.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import TypeAdapter

from astromesh.config.tools import AnyTool
from astromesh.errors import ConfigurationError
from astromesh.security.grants import Grants
from astromesh.tools.base import ToolContext
from astromesh.tools.builtin import build_builtin
from astromesh.tools.builtin.web_scrape import html_text
from tests.support.http_receivers import Canned, ScriptedHTTPServer

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")
PRIVATE = {"allow_private_network": True}


def builtin(name: str, **config):
    cfg = TypeAdapter(AnyTool).validate_python({"type": "builtin", "name": name, "config": config})
    return build_builtin(cfg)


@pytest.fixture
def server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as srv:
        yield srv


@pytest.mark.parametrize("name", ["datetime_now", "get_current_time"])
async def test_upstream_clock_names_answer_with_upstream_keys(name: str) -> None:
    result = await builtin(name).call({"timezone": "Asia/Tokyo"}, CTX)
    assert result.ok, result.content
    assert result.data["timezone"] == "Asia/Tokyo"
    assert result.data["datetime"].endswith("+09:00")
    assert isinstance(result.data["unix_timestamp"], float)


async def test_http_request_sends_method_headers_and_json_body(
    server: ScriptedHTTPServer,
) -> None:
    server.push(Canned(201, {"id": 7}))
    tool = builtin("http_request", **PRIVATE)
    args = {
        "method": "POST",
        "url": f"{server.url}/items?x=1",
        "headers": {"X-Token": "abc"},
        "body": {"name": "widget"},
    }
    result = await tool.call(args, CTX)
    assert result.ok, result.content
    assert result.data["status_code"] == 201
    assert result.data["body"] == {"id": 7}
    [received] = server.requests
    assert (received.method, received.path) == ("POST", "/items?x=1")
    assert received.headers["x-token"] == "abc"
    assert received.json() == {"name": "widget"}


async def test_http_request_reports_error_statuses_as_answers(server: ScriptedHTTPServer) -> None:
    server.push(Canned(404, "no such item"))
    result = await builtin("http_request", **PRIVATE).call(
        {"method": "DELETE", "url": f"{server.url}/items/9"}, CTX
    )
    assert result.ok
    assert result.data["status_code"] == 404
    assert result.data["body"] == "no such item"
    assert server.requests[0].method == "DELETE"


async def test_http_request_bounds_huge_responses(server: ScriptedHTTPServer) -> None:
    server.push(Canned(200, b"x" * 3_000_000))
    tool = builtin("http_request", max_response_bytes=1000, **PRIVATE)
    result = await tool.call({"method": "GET", "url": server.url}, CTX)
    assert result.ok
    assert len(result.data["body"]) == 1000
    assert "1000" in result.data["truncated"]


@pytest.mark.parametrize("header", ["Host", "transfer-encoding", "Content-Length"])
async def test_http_request_refuses_transport_headers(
    server: ScriptedHTTPServer, header: str
) -> None:
    result = await builtin("http_request", **PRIVATE).call(
        {"method": "GET", "url": server.url, "headers": {header: "evil.example"}}, CTX
    )
    assert not result.ok and header in result.content
    assert server.requests == []


async def test_http_request_checks_its_arguments() -> None:
    result = await builtin("http_request").call({"method": "TRACE", "url": "x"}, CTX)
    assert not result.ok and "method" in result.content


async def test_upstream_allow_localhost_means_allow_private_network(
    server: ScriptedHTTPServer,
) -> None:
    result = await builtin("http_request", allow_localhost=True).call(
        {"method": "GET", "url": server.url}, CTX
    )
    assert result.ok, result.content


async def test_web_scrape_returns_the_text_without_scripts(server: ScriptedHTTPServer) -> None:
    page = (
        "<html><head><title>Hello  page</title><style>p{color:red}</style></head>"
        "<body><h1>Title</h1><script>steal()</script><p>First &amp; second.</p>"
        "<p>Third</p></body></html>"
    )
    server.push(Canned(200, page))
    result = await builtin("web_scrape", **PRIVATE).call({"url": server.url}, CTX)
    assert result.ok, result.content
    assert result.data["title"] == "Hello page"
    assert result.data["content"] == "Title\nFirst & second.\nThird"
    assert "steal" not in result.content and "color" not in result.content


async def test_web_scrape_caps_the_text_at_max_length(server: ScriptedHTTPServer) -> None:
    server.push(Canned(200, "<p>" + "word " * 10_000 + "</p>"))
    tool = builtin("web_scrape", max_chars=500, **PRIVATE)
    result = await tool.call({"url": server.url, "max_length": 100_000}, CTX)
    assert result.ok
    assert result.data["length"] == 500 == len(result.data["content"])
    assert "truncated" in result.data


async def test_web_scrape_reports_http_errors(server: ScriptedHTTPServer) -> None:
    server.push(Canned(500, "boom"))
    result = await builtin("web_scrape", **PRIVATE).call({"url": server.url}, CTX)
    assert not result.ok and "500" in result.content


def test_html_text_survives_unclosed_tags() -> None:
    assert html_text("<div><b>bold<i>both</div>tail") == ("", "boldboth\ntail")


async def test_send_webhook_posts_the_payload_once(server: ScriptedHTTPServer) -> None:
    server.push(Canned(503, "busy"))
    tool = builtin("send_webhook", **PRIVATE)
    result = await tool.call(
        {"url": f"{server.url}/hook", "payload": {"event": "done"}, "headers": {"X-A": 1}}, CTX
    )
    assert result.ok
    assert result.data == {"status_code": 503, "response": "busy", "delivered": False}
    [received] = server.requests  # a POST that may have arrived is never sent twice
    assert received.json() == {"event": "done"} and received.headers["x-a"] == "1"


async def test_send_webhook_does_not_follow_redirects(server: ScriptedHTTPServer) -> None:
    server.push(Canned(307, "", headers={"Location": "http://169.254.169.254/"}))
    result = await builtin("send_webhook", **PRIVATE).call({"url": server.url, "payload": {}}, CTX)
    assert result.ok and result.data["status_code"] == 307
    assert len(server.requests) == 1


@pytest.mark.parametrize("name", ["http_request", "web_scrape", "send_webhook"])
async def test_network_builtins_refuse_loopback_and_metadata_by_default(
    server: ScriptedHTTPServer, name: str
) -> None:
    tool = builtin(name)
    for url in (server.url, "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        args = {"url": url, "method": "GET", "payload": {}}
        args = {k: v for k, v in args.items() if k in tool.parameters["properties"]}
        result = await tool.call(args, CTX)
        assert not result.ok, (url, result)
    assert server.requests == []


@pytest.mark.parametrize("name", ["http_request", "web_scrape"])
async def test_redirects_to_loopback_are_refused(name: str) -> None:
    with ScriptedHTTPServer() as inner, ScriptedHTTPServer() as outer:
        outer.push(Canned(302, "", headers={"Location": f"{inner.url}/admin"}))
        # the outer hop is allowed only by its own host pattern; the redirect's is not
        tool = build_builtin(
            TypeAdapter(AnyTool).validate_python({"type": "builtin", "name": name}),
            grants=Grants(network_hosts=(f"127.0.0.1:{outer.port}",)),
            guard=Grants(network_hosts=(f"127.0.0.1:{outer.port}",)).tool_guard(
                allow_private_network=True
            ),
        )
        args = {"url": outer.url, "method": "GET"}
        args = {k: v for k, v in args.items() if k in tool.parameters["properties"]}
        result = await tool.call(args, CTX)
        assert not result.ok and "allowed hosts" in result.content
        assert inner.requests == []


async def test_metadata_stays_refused_with_allow_private_network() -> None:
    result = await builtin("http_request", **PRIVATE).call(
        {"method": "GET", "url": "http://169.254.169.254/latest/meta-data/"}, CTX
    )
    assert not result.ok and "metadata" in result.content


def test_a_file_agents_grants_keep_private_networks_closed_when_narrowed() -> None:
    cfg = TypeAdapter(AnyTool).validate_python(
        {"type": "builtin", "name": "http_request", "config": PRIVATE}
    )
    tool = build_builtin(cfg, grants=Grants(registered=True, private_network=False))
    assert tool.http.guard.allow_private_network is False


@pytest.mark.parametrize(
    ("name", "config", "words"),
    [
        ("http_request", {"timeout": 3}, "config.timeout"),
        ("web_scrape", {"max_chars": 0}, "config.max_chars"),
        ("send_webhook", {"max_response_bytes": -1}, "config.max_response_bytes"),
    ],
)
def test_config_typos_fail_when_built(name: str, config: dict, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words.replace(".", r"\.")):
        builtin(name, **config)


async def test_graphql_query_posts_query_and_variables(server: ScriptedHTTPServer) -> None:
    server.push(Canned(200, {"data": {"user": {"name": "Ada"}}}))
    tool = builtin("graphql_query", **PRIVATE)
    args = {
        "endpoint": f"{server.url}/graphql",
        "query": "query($id: ID!) { user(id: $id) { name } }",
        "variables": {"id": "1"},
    }
    result = await tool.call(args, CTX)
    assert result.ok, result.content
    assert result.data == {"status_code": 200, "data": {"user": {"name": "Ada"}}}
    assert server.requests[0].json() == {"query": args["query"], "variables": {"id": "1"}}


async def test_graphql_query_refuses_loopback_and_non_json(server: ScriptedHTTPServer) -> None:
    blocked = await builtin("graphql_query").call({"endpoint": server.url, "query": "{a}"}, CTX)
    assert not blocked.ok and "loopback" in blocked.content
    assert server.requests == []
    server.push(Canned(502, "<html>bad gateway</html>"))
    result = await builtin("graphql_query", **PRIVATE).call(
        {"endpoint": server.url, "query": "{a}"}, CTX
    )
    assert not result.ok and "502" in result.content

"""The SSRF guard: address classes, DNS answers (a fake resolver), numeric host forms (the
system resolver, which parses them without DNS), pinning, redirects, and a real local
server that is reachable only with ``allow_private_network``.

No test sends a packet anywhere but 127.0.0.1: refused addresses are refused before any
connection is attempted, which is what these tests check.
"""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from astromesh.tools.base import ToolContext
from astromesh.tools.builtin.http_get import HttpGetConfig, HttpGetTool
from astromesh.tools.ssrf import (
    BlockedDestination,
    SSRFGuard,
    classify,
    guarded_client,
    parse_ip,
    system_resolver,
)
from tests.support.http_receivers import Canned, ScriptedHTTPServer

CTX = ToolContext(run_id="run_1", agent="a", session_id="s")


@pytest.mark.parametrize(
    ("address", "kind", "private"),
    [
        ("127.0.0.1", "loopback", True),
        ("127.8.9.10", "loopback", True),
        ("10.1.2.3", "private", True),
        ("172.16.0.1", "private", True),
        ("172.31.255.254", "private", True),
        ("192.168.1.1", "private", True),
        ("169.254.10.10", "link-local", True),
        ("169.254.169.254", "cloud metadata", False),
        ("169.254.170.2", "cloud metadata", False),
        ("100.100.100.200", "cloud metadata", False),
        ("100.64.0.1", "shared (CGNAT)", True),
        ("0.0.0.0", "unspecified", True),
        ("224.0.0.1", "multicast", False),
        ("239.255.255.250", "multicast", False),
        ("240.0.0.1", "reserved", False),
        ("255.255.255.255", "reserved", False),
        ("::1", "loopback", True),
        ("::", "unspecified", True),
        ("fe80::1", "link-local", True),
        ("fc00::1", "unique-local", True),
        ("fd12:3456::1", "unique-local", True),
        ("fec0::1", "unique-local", True),
        ("fd00:ec2::254", "cloud metadata", False),
        ("ff02::1", "multicast", False),
        ("::ffff:127.0.0.1", "loopback", True),
        ("::ffff:169.254.169.254", "cloud metadata", False),
        ("::ffff:10.0.0.1", "private", True),
        ("::127.0.0.1", "loopback", True),
        ("2002:7f00:1::", "loopback", True),
        ("2002:a9fe:a9fe::1", "cloud metadata", False),
        ("64:ff9b::a9fe:a9fe", "cloud metadata", False),
        ("64:ff9b::7f00:1", "loopback", True),
    ],
)
def test_non_public_addresses_are_classified(address, kind, private):
    refusal = classify(ipaddress.ip_address(address))
    assert refusal is not None
    assert (refusal.kind, refusal.private) == (kind, private)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address):
    assert classify(ipaddress.ip_address(address)) is None
    SSRFGuard().check_address(ipaddress.ip_address(address))


def test_allow_private_network_lifts_private_kinds_only():
    guard = SSRFGuard(allow_private_network=True)
    for allowed in ("127.0.0.1", "10.0.0.1", "::1", "fd12::1", "169.254.1.1", "100.64.1.1"):
        guard.check_address(ipaddress.ip_address(allowed))
    for refused in ("169.254.169.254", "fd00:ec2::254", "224.0.0.1", "240.0.0.1"):
        with pytest.raises(BlockedDestination):
            guard.check_address(ipaddress.ip_address(refused))


def test_ip_literals_parse_in_url_forms():
    assert parse_ip("[::1]") == ipaddress.ip_address("::1")
    assert parse_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_ip("example.com") is None
    assert parse_ip("0177.0.0.1") is None  # left to the resolver, which reads it as 127.0.0.1


def fake_resolver(table):
    calls: list[str] = []

    async def resolve(host, port):
        calls.append(host)
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize(
    ("host", "answers", "words"),
    [
        ("internal.test", ["10.0.0.5"], "10.0.0.5, a private address"),
        ("loop.test", ["127.0.0.1"], "loopback"),
        ("v6loop.test", ["::1"], "loopback"),
        ("meta.test", ["169.254.169.254"], "cloud metadata"),
        ("mapped.test", ["::ffff:192.168.0.1"], "private"),
        ("mixed.test", ["93.184.216.34", "127.0.0.1"], "loopback"),
    ],
)
async def test_names_resolving_to_forbidden_addresses_are_refused(host, answers, words):
    guard = SSRFGuard(resolver=fake_resolver({host: answers}))
    with pytest.raises(BlockedDestination) as info:
        await guard.check_url(f"http://{host}/path")
    assert words in str(info.value)
    assert host in str(info.value)


async def test_public_answers_are_returned_and_unresolvable_names_refused():
    guard = SSRFGuard(resolver=fake_resolver({"ok.test": ["93.184.216.34"]}))
    assert await guard.check_url("https://ok.test/") == [ipaddress.ip_address("93.184.216.34")]
    with pytest.raises(BlockedDestination, match="cannot resolve"):
        await guard.check_url("http://missing.test/")
    with pytest.raises(BlockedDestination, match="only http and https"):
        await guard.check_url("file:///etc/passwd")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://localhost/",
    ],
)
async def test_literal_and_numeric_hosts_are_refused_with_the_system_resolver(url):
    with pytest.raises(BlockedDestination):
        await SSRFGuard(resolver=system_resolver).check_url(url)


async def test_a_local_server_is_refused_by_default_and_never_contacted():
    with ScriptedHTTPServer() as server:
        async with guarded_client(SSRFGuard(), timeout=5) as client:
            with pytest.raises(BlockedDestination, match="loopback"):
                await client.get(server.url + "/x")
        assert server.requests == []


async def test_a_local_server_is_reachable_with_allow_private_network():
    with ScriptedHTTPServer([Canned(200, {"hello": "world"})]) as server:
        async with guarded_client(SSRFGuard(allow_private_network=True), timeout=5) as client:
            response = await client.get(server.url + "/x")
        assert response.json() == {"hello": "world"}
        assert [r.path for r in server.requests] == ["/x"]


async def test_the_connection_goes_to_the_address_that_was_checked():
    """One resolution per connection, and its answer is the address connected to: the name
    does not exist in real DNS, so the request only arrives if the checked IP was used."""
    with ScriptedHTTPServer() as server:
        resolver = fake_resolver({"pinned.test": ["127.0.0.1"]})
        guard = SSRFGuard(allow_private_network=True, resolver=resolver)
        async with guarded_client(guard, timeout=5) as client:
            response = await client.get(f"http://pinned.test:{server.port}/pin")
        assert response.status_code == 200
        assert resolver.calls == ["pinned.test"]
        assert server.requests[0].headers["host"] == f"pinned.test:{server.port}"


async def test_environment_proxies_are_ignored(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with ScriptedHTTPServer() as server:
        async with guarded_client(SSRFGuard(allow_private_network=True), timeout=5) as client:
            assert (await client.get(server.url)).status_code == 200


class OnlyThisLoopbackIsPublic(SSRFGuard):
    """Treats 127.0.0.1 as if it were a public address, so a local server can play the
    public site that redirects somewhere it must not."""

    def refusal(self, address):
        if address == ipaddress.ip_address("127.0.0.1"):
            return None
        return super().refusal(address)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "cloud metadata"),
        ("http://127.0.0.2/admin", "loopback"),
        ("http://[::1]/admin", "loopback"),
        ("http://rebind.test/admin", "rebind.test: it resolves to 10.0.0.1"),
    ],
)
async def test_redirects_to_forbidden_addresses_are_refused(location, words):
    with ScriptedHTTPServer([Canned(302, "", headers={"Location": location})]) as server:
        guard = OnlyThisLoopbackIsPublic(resolver=fake_resolver({"rebind.test": ["10.0.0.1"]}))
        tool = HttpGetTool(guard=guard)
        result = await tool.call({"url": server.url + "/start"}, CTX)
        await tool.aclose()
    assert not result.ok
    assert words in result.content
    assert len(server.requests) == 1


async def test_http_get_reads_allowed_pages_and_reports_http_errors():
    with ScriptedHTTPServer(
        [Canned(200, "hello " * 10), Canned(404, "missing"), Canned(200, "x" * 100)]
    ) as server:
        tool = HttpGetTool(
            config=HttpGetConfig(allow_private_network=True, max_bytes=50),
        )
        ok = await tool.call({"url": server.url + "/a"}, CTX)
        missing = await tool.call({"url": server.url + "/b"}, CTX)
        long = await tool.call({"url": server.url + "/c"}, CTX)
        await tool.aclose()
    assert ok.ok and ok.data["content"] == "hello " * 8 + "he" and ok.data["status"] == 200
    assert not missing.ok and "HTTP 404" in missing.content and "missing" in missing.content
    assert long.data["truncated"] == "body cut at 50 bytes"


async def test_http_get_allowed_hosts_apply_to_every_hop():
    with ScriptedHTTPServer(
        [Canned(302, "", headers={"Location": "http://localhost:1/elsewhere"})]
    ) as server:
        tool = HttpGetTool(
            config=HttpGetConfig(allow_private_network=True, allowed_hosts=["127.0.0.1"]),
        )
        redirected = await tool.call({"url": server.url + "/go"}, CTX)
        other = await tool.call({"url": "http://localhost:1/"}, CTX)
        scheme = await tool.call({"url": "file:///etc/passwd"}, CTX)
        await tool.aclose()
    assert "'localhost' is not in this tool's allowed_hosts" in redirected.content
    assert "not in this tool's allowed_hosts" in other.content
    assert "only http and https" in scheme.content


async def test_guarded_client_timeouts_are_httpx_timeouts():
    with ScriptedHTTPServer([Canned(200, "late", delay=1.0)]) as server:
        async with guarded_client(SSRFGuard(allow_private_network=True), timeout=0.2) as client:
            with pytest.raises(httpx.TimeoutException):
                await client.get(server.url)

"""OTLP export: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, a run's spans reach a collector as
http/protobuf (a real loopback HTTP server that decodes what it receives)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from astromesh.telemetry import provider
from tests.support.agents import primary, python_tool, write_agent
from tests.support.http_receivers import Canned, ScriptedHTTPServer
from tests.support.model_servers import Reply


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as server:
        server.push(*[Canned(200, b"") for _ in range(20)])
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "astromesh-test")
        provider.rebuild()
        yield server
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
        provider.rebuild()  # later tests export nothing


def decoded(server: ScriptedHTTPServer) -> list[tuple[str, dict, bytes]]:
    """``(span name, attributes, trace id)`` of every span the collector received."""
    spans = []
    for request in server.requests:
        assert request.path == "/v1/traces"
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["content-type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(request.body)
        for resource in message.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            assert service["service.name"] == "astromesh-test"
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value for a in span.attributes}
                    spans.append((span.name, attributes, span.trace_id))
    return spans


async def test_a_runs_spans_are_exported_over_otlp(
    collector, openai_server, agents_dir, make_runtime
):
    write_agent(agents_dir, model=primary(openai_server.url), tools=[python_tool("add", "add")])
    openai_server.push(
        Reply(tool_calls=[("add", {"a": 2, "b": 3})], tokens_in=20, tokens_out=5),
        Reply("The sum is 5.", tokens_in=30, tokens_out=6),
    )
    run = await make_runtime().run("helper", "What is 2 + 3?")

    provider.flush()  # what the Lambda worker does at the end of every invocation

    spans = decoded(collector)
    names = [name for name, _, _ in spans]
    assert "invoke_agent helper" in names and "execute_tool add" in names
    assert names.count("chat scripted") == 2
    assert {trace_id.hex() for _, _, trace_id in spans} == {run.trace.trace_id}
    chat = next(attrs for name, attrs, _ in spans if name == "chat scripted")
    assert chat["gen_ai.operation.name"].string_value == "chat"
    assert chat["gen_ai.usage.input_tokens"].int_value == 20
    assert len(spans) == len(run.trace.spans)  # the same spans as kept with the run

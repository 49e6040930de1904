"""Spans as the SDK's in-memory exporter receives them, and a runtime over a temporary agents
folder (in-memory state unless a test says otherwise)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.executors.conftest import aws_side, local_side, step_functions  # noqa: F401
from tests.runtime.conftest import agents_dir, make_runtime  # noqa: F401
from tests.support.spans import recorded_spans


class Exported:
    """The spans the runtime's provider finished during one test."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name.startswith(prefix)]

    def one(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.all() if s.name == name]
        return span


@pytest.fixture
def exported() -> Iterator[Exported]:
    """The in-memory exporter on the runtime's provider, emptied for each test."""
    with recorded_spans() as exporter:
        yield Exported(exporter)

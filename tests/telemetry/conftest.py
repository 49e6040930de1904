"""Spans as the SDK's in-memory exporter receives them, and a runtime over a temporary agents
folder (in-memory state unless a test says otherwise)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend
from tests.executors.conftest import aws_side, local_side, step_functions  # noqa: F401
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


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    return tmp_path / "agents"


@pytest.fixture
async def make_runtime(agents_dir: Path) -> AsyncIterator[Callable[..., AgentRuntime]]:
    opened: list[AgentRuntime] = []

    def make(**kwargs: Any) -> AgentRuntime:
        kwargs.setdefault("state", MemoryBackend())
        kwargs.setdefault("env", {})
        runtime = AgentRuntime(agents_dir, **kwargs)
        opened.append(runtime)
        return runtime

    yield make
    for runtime in opened:
        await runtime.close()

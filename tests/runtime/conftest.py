"""A runtime over a temporary agents folder, with in-memory state unless a test says otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from astromesh.runs.events import RunEvent
from astromesh.runtime import AgentRuntime
from astromesh.stores.memory import MemoryBackend


class Recorder:
    """Collects a run's events in order."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def __call__(self, event: RunEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def tokens(self) -> str:
        return "".join(e.data["content"] for e in self.events if e.type == "token")


@pytest.fixture
def agents_dir(tmp_path: Path) -> Path:
    return tmp_path / "agents"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


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

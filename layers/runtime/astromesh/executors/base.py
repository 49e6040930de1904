"""What an executor does: drive a run through the step loop and persist it at each boundary."""

from __future__ import annotations

from abc import ABC, abstractmethod

from astromesh.agent import Agent
from astromesh.runs.events import EventSink
from astromesh.runs.state import RunState


class Executor(ABC):
    @abstractmethod
    async def execute(self, run: RunState, agent: Agent, emit: EventSink) -> RunState:
        """Run ``run`` (already created in the store) to a terminal status and return it."""

"""Two deployments of the same agent: in-process (LocalExecutor) and on the state machine.

Each side has its own agents folder, its own scripted model server and its own SQLite file,
so the model sees the same call ids and the same (empty) history on both sides and the runs
can be compared field by field. The state machine's Lambda handlers read their side's folder
and file from the environment, as in AWS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from astromesh.stores.sqlite import SQLiteBackend
from tests.support.executors import Side
from tests.support.model_servers import ScriptedOpenAIServer
from tests.support.stepfunctions import LocalStepFunctions


@pytest.fixture
async def local_side(tmp_path: Path) -> AsyncIterator[Side]:
    with ScriptedOpenAIServer() as server:
        side = Side(tmp_path / "local-agents", server, SQLiteBackend(tmp_path / "local.db"))
        yield side
        await side.state.close()


@pytest.fixture
async def aws_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Side]:
    """The state machine's side; its functions find agents and store through the env."""
    side_dir = tmp_path / "aws-agents"
    db = tmp_path / "aws.db"
    monkeypatch.setenv("ASTROMESH_AGENTS_DIR", str(side_dir))
    monkeypatch.setenv("ASTROMESH_STATE_BACKEND", "sqlite")
    monkeypatch.setenv("ASTROMESH_STATE_PATH", str(db))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with ScriptedOpenAIServer() as server:
        side = Side(side_dir, server, SQLiteBackend(db))
        yield side
        await side.state.close()


@pytest.fixture
def step_functions(aws_side: Side) -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as sfn:
        yield sfn

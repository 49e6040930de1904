"""functions/orchestration_step and functions/tool_executor, invoked with every sample event.

The samples in ``events/orchestration_step`` and ``events/tool_executor`` are one run's
tasks, in the order the state machine sends them; the handlers read agents and store from the
environment, as in AWS, and are imported fresh (a cold container) for each test.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from astromesh.runs.state import RunState, RunStatus
from astromesh.stores.sqlite import SQLiteBackend
from tests.support.agents import primary, python_tool, write_agent
from tests.support.model_servers import Reply
from tests.support.stepfunctions import FakeLambdaContext, load_handler

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
FUNCTIONS = REPO / "functions"


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


RUN_ID = sample("orchestration_step/prepare")["run_id"]
HEAVY = ("numpy", "faiss", "onnxruntime", "tokenizers")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openai_server) -> Path:
    """Agents and store for the handlers (through the env), the sample's run created."""
    write_agent(
        tmp_path / "agents", model=primary(openai_server.url), tools=[python_tool("add", "add")]
    )
    path = tmp_path / "state.db"
    monkeypatch.setenv("ASTROMESH_AGENTS_DIR", str(tmp_path / "agents"))
    monkeypatch.setenv("ASTROMESH_STATE_BACKEND", "sqlite")
    monkeypatch.setenv("ASTROMESH_STATE_PATH", str(path))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    asyncio.run(_create_run(path))
    return path


@pytest.fixture
def handlers(db: Path) -> Iterator[dict[str, ModuleType]]:
    loaded = {
        name: load_handler(FUNCTIONS / name / "handler.py", f"test_{name}_handler")
        for name in ("orchestration_step", "tool_executor")
    }
    yield loaded
    for module in loaded.values():
        module.worker.close()


def invoke(module: ModuleType, event: dict[str, Any]) -> Any:
    return module.handler(event, FakeLambdaContext(module.__name__))


async def _create_run(path: Path) -> None:
    backend = SQLiteBackend(path)
    await backend.runs.create(RunState(id=RUN_ID, agent="helper", namespace="tests", query="2+3?"))
    await backend.close()


async def _stored(path: Path) -> RunState:
    backend = SQLiteBackend(path)
    try:
        return await backend.runs.get(RUN_ID)
    finally:
        await backend.close()


def test_a_run_through_every_sample_in_order(handlers, db, openai_server):
    openai_server.push(Reply(tool_calls=[("add", {"a": 2, "b": 3})]), Reply("5"))
    step, tool = handlers["orchestration_step"], handlers["tool_executor"]

    assert invoke(step, sample("orchestration_step/prepare")) == {"run_id": RUN_ID}
    assert invoke(step, sample("orchestration_step/step")) == {
        "next": "act",
        "actions": [{"run_id": RUN_ID, "call_id": "call_1"}],
    }
    assert invoke(tool, sample("tool_executor/call")) == {
        "call_id": "call_1",
        "ok": True,
        "child_run_id": None,
    }
    assert invoke(step, sample("orchestration_step/observe")) == {"run_id": RUN_ID}
    assert invoke(step, sample("orchestration_step/step")) == {"next": "finish", "actions": []}
    assert invoke(step, sample("orchestration_step/finalize")) == {
        "run_id": RUN_ID,
        "status": "succeeded",
    }
    run = asyncio.run(_stored(db))
    assert run.answer == "5" and [s.type for s in run.steps] == [
        "prepare",
        "model_call",
        "tool_call",
        "model_call",
    ]


def test_the_failure_path_sample_ends_the_run_with_the_error(handlers, db):
    step = handlers["orchestration_step"]
    invoke(step, sample("orchestration_step/prepare"))

    answer = invoke(step, sample("orchestration_step/finalize_error"))

    assert answer == {"run_id": RUN_ID, "status": "failed"}
    run = asyncio.run(_stored(db))
    assert run.status is RunStatus.FAILED and run.error == "internal error: States.Timeout"


def test_every_sample_is_exercised():
    used = {
        "orchestration_step/prepare",
        "orchestration_step/step",
        "orchestration_step/observe",
        "orchestration_step/finalize",
        "orchestration_step/finalize_error",
        "tool_executor/call",
    }
    found = {
        f"{path.parent.name}/{path.stem}"
        for folder in ("orchestration_step", "tool_executor")
        for path in (EVENTS / folder).glob("*.json")
    }
    assert found == used


def test_an_unknown_action_is_refused(handlers):
    with pytest.raises(ValueError, match="unknown action 'dance'"):
        invoke(handlers["orchestration_step"], {"action": "dance", "run_id": RUN_ID})


@pytest.mark.parametrize("function", ["orchestration_step", "tool_executor"])
def test_a_handler_imports_nothing_heavy(function):
    """Cold starts: no numpy, FAISS, onnxruntime or tokenizers in these functions."""
    handler = FUNCTIONS / function / "handler.py"
    code = "\n".join(
        [
            "import importlib.util, sys",
            f"spec = importlib.util.spec_from_file_location('h', {str(handler)!r})",
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))",
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"

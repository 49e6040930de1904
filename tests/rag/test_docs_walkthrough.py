"""The README's RAG walk-through, run as written: ``astromesh ingest`` the project's docs into the
sample pipeline of ``examples/rag``, then ``astromesh run`` its agent on the embedded model.

The commands are read from the README's block, so the README cannot drift from what works.
The embedded 135M model's wording is not asserted; what is: the ingest report, that the
question's passage (``docs/api.md``, the WebSocket section) is what the ``rag`` tool
returned first, and that it was the answer stage's input (the prompt rendering itself is
covered with a scripted model in ``tests/orchestration/test_pipeline.py``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

REPO = Path(__file__).resolve().parents[2]
HEADING = "### Ask this project's docs (RAG)"


def readme_commands() -> list[list[str]]:
    """The ``astromesh ...`` lines of the first bash block under the walk-through's heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(HEADING, 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the walk-through has no bash block"
    commands = [shlex.split(line, comments=True) for line in block[1].splitlines()]
    return [argv for argv in commands if argv and argv[0] == "astromesh"]


def astromesh(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``argv`` (starting with ``astromesh``) with this checkout's package, in ``cwd``, with no
    Astromesh setting inherited from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROMESH_")}
    env["PYTHONPATH"] = os.pathsep.join((str(REPO / "layers" / "runtime"), str(REPO)))
    return subprocess.run(
        [sys.executable, "-m", "astromesh.cli", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A working folder that looks like the repository's root to the commands (its ``docs``
    and ``examples``), where the index and the state file they write stay."""
    for name in ("docs", "examples"):
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    return tmp_path


def test_the_readme_walkthrough_answers_from_the_docs(checkout: Path) -> None:
    ingest, run = readme_commands()
    assert ingest[:3] == ["astromesh", "ingest", "project-docs"]
    assert run[:3] == ["astromesh", "run", "docs-guide"]
    corpus = sorted(p.name for p in (REPO / "docs").glob("*.md"))

    first = astromesh(ingest, checkout)
    assert first.returncode == 0, first.stderr
    assert f"{len(corpus)} file(s): {len(corpus)} indexed" in first.stderr
    assert (checkout / ".astromesh" / "faiss" / "project_docs.faiss").is_file()
    again = astromesh(ingest, checkout)
    assert again.returncode == 0, again.stderr
    assert f"{len(corpus)} unchanged" in again.stderr and "0 chunk(s) written" in again.stderr

    answered = astromesh([*run, "--json"], checkout)
    assert answered.returncode == 0, answered.stderr
    body = json.loads(answered.stdout)
    assert body["status"] == "succeeded" and body["answer"].strip()
    [call] = [s["data"] for s in body["steps"] if s["type"] == "tool_call"]
    assert call["name"] == "search_docs" and call["ok"] is True
    assert call["arguments"] == {"query": run[3]}
    passages = re.split(r"\n\n(?=\[\d+\] )", call["result"])
    assert passages[0].startswith("[1] source: docs/api.md")
    assert "## WebSocket" in passages[0] and "`tool_result`" in passages[0]
    # the retrieve stage's output (the passages) became the answer stage's input
    stages = [s["data"] for s in body["steps"] if s["type"] == "stage"]
    assert [(s["name"], s["kind"]) for s in stages] == [("retrieve", "tool"), ("answer", "prompt")]
    assert stages[0]["output"] == call["result"]
    assert stages[1]["output"] == body["answer"]

"""``python -m bench`` end to end on one fast benchmark: it runs it in its own interpreter,
collects what it recorded and writes BENCHMARKS.md with the machine, the command, the output
and the issue's targets (measured ones PASS or MISS, the rest NOT MEASURED, never guessed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_python_m_bench_writes_benchmarks_md(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "PYTHONPATH": str(REPO / "layers" / "runtime")}
    args = ["--only", "cost_model", "--output", str(output)]
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = output.read_text()
    assert f"- command: `python -m bench {' '.join(args)}`" in text
    assert "- cores: " in text and "- Python 3." in text
    assert (
        "| cost_model | `python bench/cost_model.py --iterations 1 5 --tool-calls 1 3` | ok |"
        in (text)
    )
    transitions = next(line for line in text.splitlines() if "transitions per iteration" in line)
    assert "| PASS |" in transitions or "| MISS |" in transitions
    assert "| NOT MEASURED |" in next(line for line in text.splitlines() if "HTTP floor" in line)
    assert "typical run: 3 iterations x 1 tool call(s)" in text
    recorded = text.split("## Recorded figures (JSON lines)")[1].split("```")[1]
    rows = [json.loads(line) for line in recorded.strip().splitlines()]
    assert {r["bench"] for r in rows} == {"cost_model"} and len(rows) == 3 * 5


def test_an_unknown_benchmark_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nope", "--output", str(tmp_path / "b.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no such benchmark: nope" in done.stderr
    assert not (tmp_path / "b.md").exists()

"""Cold start from the runtime layer with and without the bytecode the build ships.

Builds the runtime layer as ``infra/bundling.py`` does, but with wheels for this machine's
CPU (Lambda's are arm64; bytecode is the same for both), once without bytecode and once
compiled by :func:`infra.bundling.compile_bytecode`. Then starts fresh interpreters of
Lambda's Python (:func:`infra.bundling.build_python`) with only that layer's ``python/`` on
``sys.path``, the rows interleaved, and prints the median of each: the ``api`` handler and
its reference (a minimal FastAPI + Mangum app), a light handler, and what the light
handlers' workers import on their first invocation. ``PYTHONDONTWRITEBYTECODE`` is set on
both sides, as Lambda's read-only ``/opt`` would: the side without bytecode must not write
any, and reading the shipped ``.pyc`` works regardless.

    python bench/bytecode.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # infra, from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import record  # noqa: E402
from ingress import AGENT, FIRST_USE, MINIMAL_FASTAPI, _load_command  # noqa: E402


def _build(out: Path) -> None:
    """The runtime layer without bytecode, for this machine's CPU."""
    from infra import bundling

    machine = platform.machine()
    bundling.PLATFORMS = (f"manylinux2014_{machine}", f"manylinux_2_28_{machine}")
    bundling.build(bundling.runtime_recipe(bytecode=False), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per row")
    args = parser.parse_args()
    import yaml
    from infra.bundling import build_python, compile_bytecode

    python = build_python()
    if python is None:
        sys.exit("no CPython 3.12 found: set ASTROMESH_BUILD_PYTHON")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources, compiled = root / "sources", root / "bytecode"
        _build(sources)
        shutil.copytree(sources, compiled)
        compile_bytecode(compiled / "python", "runtime")
        agents = root / "agents"
        agents.mkdir()
        (agents / "assistant.agent.yaml").write_text(yaml.safe_dump(AGENT))
        minimal = root / "minimal_fastapi.py"
        minimal.write_text(MINIMAL_FASTAPI)
        loads = {
            "minimal FastAPI+Mangum": _load_command(minimal),
            "api": _load_command(REPO / "functions" / "api" / "handler.py"),
            "orchestration_step": _load_command(
                REPO / "functions" / "orchestration_step" / "handler.py"
            ),
            "first use: step workers": "import " + ", ".join(FIRST_USE["first use: step workers"]),
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        base |= {
            "PYTHONDONTWRITEBYTECODE": "1",
            "ASTROMESH_AGENTS_DIR": str(agents),
            "ASTROMESH_STATE_BACKEND": "sqlite",
            "ASTROMESH_STATE_PATH": str(root / "state.db"),
            "POWERTOOLS_SERVICE_NAME": "astromesh-api",
        }
        sides = {"sources": sources, "bytecode": compiled}
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for label, code in loads.items():
                for side, layer in sides.items():
                    env = base | {"PYTHONPATH": str(layer / "python")}
                    started = time.perf_counter()
                    subprocess.run([str(python), "-s", "-c", code], env=env, check=True)
                    samples.setdefault((label, side), []).append(time.perf_counter() - started)
        written = list((sources / "python").rglob("__pycache__"))
        assert not written, f"the side without bytecode wrote some: {written[:3]}"
    print(f"{python}: median of {args.runs} fresh interpreters, rows interleaved")
    print(f"  {'':28} {'sources':>9} {'bytecode':>9} {'ratio':>6}")
    medians = {key: statistics.median(value) for key, value in samples.items()}
    for label in loads:
        without, with_ = medians[(label, "sources")], medians[(label, "bytecode")]
        print(f"  {label:28} {without * 1000:7.0f}ms {with_ * 1000:7.0f}ms {with_ / without:6.2f}")
        record("bytecode", label, with_ * 1000, "ms", ratio=with_ / without)
    for side in sides:
        ratio = medians[("api", side)] / medians[("minimal FastAPI+Mangum", side)]
        print(f"  api / minimal FastAPI+Mangum, {side}: {ratio:.2f}x")


if __name__ == "__main__":
    main()

"""Run every benchmark in bench/ and write BENCHMARKS.md at the repository's root.

    python -m bench            # quick sizes: a few minutes on two cores
    python -m bench --full     # the sizes the issue's targets name (100k vectors, ...)
    python -m bench --only peers cost_model

Each ``bench/*.py`` with a ``__main__`` block is a benchmark, found when the runner starts, so
one added later runs too (with its defaults, unless :data:`ARGS` says otherwise). Each runs in
its own interpreter, with this checkout's runtime first on ``PYTHONPATH``; what it prints goes
into BENCHMARKS.md as it is, and the figures it records (:mod:`_results`) are checked against
the issue's targets (:mod:`_targets`). A benchmark that fails or times out is reported as such
and the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from _results import ENV  # noqa: E402
from _targets import TARGETS  # noqa: E402

REDIS = "redis://127.0.0.1:6379/15"

FAISS_100K = ["--minilm", "0", "--docs", "0", "--texts", "8", "--no-pgvector", "--queries", "100"]
"""bench/rag.py's numpy and FAISS rows at 100k x 384 (the ANN target's size) in ~1 min."""

ARGS: dict[str, tuple[list[list[str]], list[list[str]]]] = {
    "rag": ([["--quick"], FAISS_100K], [[]]),
    "ingress": ([["--cold", "3", "--requests", "100"]], [[]]),
    "bytecode": ([["--runs", "5"]], [[]]),
    "steps": ([["--runs", "10", "--machine-iterations", "1", "5"]], [[]]),
    "peers": ([["--rounds", "7", "--tool-calls", "10"]], [[]]),
    "cost_model": (
        [["--iterations", "1", "5", "--tool-calls", "1", "3"]],
        [["--iterations", "1", "5", "10", "20"]],
    ),
    "router": ([["--calls", "500", "--runs", "5", "--redis", REDIS]], [["--redis", REDIS]]),
    "recovery": ([["--down", "2"]], [[]]),
    "load": ([["--runs", "20", "--messages", "10"]], [[]]),
    "local": ([["--starts", "1", "--runs", "5"]], [[]]),
    "sqlite_residue": ([["--turns", "50"]], [[]]),
}
"""(quick, full) runs per benchmark, each a list of arguments; one not named runs once with
its defaults."""

SKIP = {
    "upstream_docs": "needs a checkout of upstream Astromesh: python bench/upstream_docs.py PATH",
}


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    command: str
    seconds: float
    status: str
    output: str


def discover() -> list[str]:
    """Benchmark names: ``bench/*.py`` with a ``__main__`` block, helpers (``_*``) aside."""
    names = []
    for path in sorted(BENCH.glob("*.py")):
        if path.name.startswith("_"):
            continue
        if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
            names.append(path.stem)
    return names


def run(name: str, args: list[str], results_file: Path, timeout: float) -> Result:
    command = [sys.executable, f"bench/{name}.py", *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "layers" / "runtime"), str(REPO), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env[ENV] = str(results_file)
    shown = " ".join(["python", *command[1:]])
    print(f"== {shown}", flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        output, status = done.stdout, "ok" if done.returncode == 0 else f"exit {done.returncode}"
    except subprocess.TimeoutExpired as exc:
        raw = exc.stdout or b""
        output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        status = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - start
    print(f"   {status}, {seconds:.0f} s", flush=True)
    return Result(name, shown, seconds, status, output)


def machine() -> list[str]:
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"- cores: {os.cpu_count()}, memory: {memory}, load (1/5/15 min) at the end: {load}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- OS: {platform.platform()}",
    ]


def _trim(text: str, lines: int = 250) -> str:
    kept = text.rstrip().splitlines()
    if len(kept) > lines:
        kept = [f"... ({len(kept) - lines} earlier lines left out)", *kept[-lines:]]
    return "\n".join(kept)


def write(path: Path, argv: list[str], results: list[Result], rows: list[dict], began: str) -> None:
    outputs: dict[str, str] = {}
    for r in results:
        outputs[r.name] = outputs.get(r.name, "") + r.output
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` (bench/__main__.py); do not edit by hand, run it again.",
        "Figures from one run on a shared machine: compare ratios within the run, not absolute",
        "times across runs.",
        "",
        f"- date: {began}",
        f"- command: `python -m bench{' ' + ' '.join(argv) if argv else ''}`",
        *machine(),
        "",
        "## Issue 18 targets",
        "",
        "| target | status | figure |",
        "|---|---|---|",
    ]
    for target in TARGETS:
        verdict = target.check(rows, outputs)
        lines.append(f"| {target.name} | {verdict.status} | {verdict.figure} |")
    lines += ["", "## Runs", "", "| benchmark | command | status | wall s |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | `{r.command}` | {r.status} | {r.seconds:.0f} |")
    for name, why in SKIP.items():
        lines.append(f"| {name} | - | skipped: {why} | - |")
    for r in results:
        lines += ["", f"## {r.name}", "", f"`{r.command}` ({r.status}, {r.seconds:.0f} s)", ""]
        lines += ["```", _trim(r.output), "```"]
    lines += ["", "## Recorded figures (JSON lines)", "", "```"]
    lines += [json.dumps(row) for row in rows]
    lines += ["```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the targets' sizes (slow)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--timeout", type=float, help="seconds per benchmark (600 quick)")
    args = parser.parse_args()
    timeout = args.timeout or (3600 if args.full else 600)
    names = [n for n in discover() if n not in SKIP]
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (have {names})")
        names = [n for n in names if n in args.only]
    began = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results_file = Path(tmp) / "results.jsonl"
        results_file.touch()
        for name in names:
            quick, full = ARGS.get(name, ([[]], [[]]))
            for arguments in full if args.full else quick:
                results.append(run(name, arguments, results_file, timeout))
        rows = [json.loads(line) for line in results_file.read_text().splitlines() if line]
    write(args.output, sys.argv[1:], results, rows, began)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

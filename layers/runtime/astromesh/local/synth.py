"""``cdk.out`` kept in step with the sources: synthesized again when missing or stale.

The app is synthesized as the tests do (``infra/app.py``'s ``build_app``, cdk-nag included),
in a subprocess (the CDK's jsii runtime is a Node process that should not outlive it), with
``skipBundling`` (no pip: the layers are their source folders, which is all this machine
needs) and asset metadata on, so the templates name each function's source folder. Such an
assembly is for local use; ``cdk deploy`` synthesizes its own, with bundled layers.

Stale means: some file under ``infra/``, ``functions/``, ``agents/``, the state machine
definition's package or ``cdk.json`` is newer than the assembly's ``manifest.json``, or the
assembly has no stack of the stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

INPUTS = (
    "infra",
    "functions",
    "agents",
    "cdk.json",
    "layers/runtime/astromesh/executors/stepfunctions",
)
"""What the templates are made of (the runtime's ASL is deployed byte for byte)."""
LOCAL_CONTEXT = {
    "skipBundling": "true",
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:disable-asset-staging": True,
}
_SCRIPT = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/layers/runtime"]
from infra.app import build_app
app, _ = build_app(sys.argv[3], json.loads(sys.argv[4]), outdir=sys.argv[2])
app.synth()
"""


class SynthError(RuntimeError):
    """``cdk synth`` failed; the message carries the end of its output."""


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
    elif root.is_dir():
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path


def newest_input(repo: Path) -> float:
    """The latest modification time among the templates' inputs."""
    return max((p.stat().st_mtime for name in INPUTS for p in _files(repo / name)), default=0.0)


def is_fresh(repo: Path, outdir: Path, stage: str) -> bool:
    manifest = outdir / "manifest.json"
    if not manifest.is_file():
        return False
    artifacts = json.loads(manifest.read_text(encoding="utf-8")).get("artifacts", {})
    if f"astromesh-{stage}-runtime" not in artifacts:
        return False
    return manifest.stat().st_mtime >= newest_input(repo)


def synthesize(repo: Path, outdir: Path, stage: str) -> float:
    """Synthesize ``stage`` into ``outdir``; the seconds it took.

    Raises:
        SynthError: the app did not synthesize (a cdk-nag finding, a Python error...).
    """
    started = time.perf_counter()
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(repo), str(outdir), stage, json.dumps(LOCAL_CONTEXT)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-25:])
        raise SynthError(f"cdk synth of stage {stage!r} failed:\n{tail}")
    return time.perf_counter() - started


def ensure_synthesized(
    repo: Path, outdir: Path, stage: str, *, force: bool = False
) -> float | None:
    """Synthesize when missing, stale or ``force``; the seconds it took, None if fresh."""
    if not force and is_fresh(repo, outdir, stage):
        return None
    return synthesize(repo, outdir, stage)


def find_repo(start: Path | None = None) -> Path:
    """The project folder: the nearest parent of ``start`` (the working directory) holding
    ``cdk.json`` and ``infra/app.py``; else the checkout this package runs from."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "cdk.json").is_file() and (folder / "infra" / "app.py").is_file():
            return folder
    package_repo = Path(__file__).resolve().parents[4]
    if (package_repo / "infra" / "app.py").is_file():
        return package_repo
    raise FileNotFoundError(f"no Astromesh project (cdk.json and infra/app.py) at or above {here}")

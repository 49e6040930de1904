"""Unzipped size of every Lambda function (code + layers) as the CDK app would deploy it,
against issue 18's 150 MiB target and Lambda's 250 MiB limit.

Synthesizes the ``dev`` stage into a temporary folder (bundling on: pip builds the layers
for arm64, as ``cdk synth`` does; ~1 min with pip's cache warm, ~0.6 GB) and reads it with
``infra/sizes.py``. docs/performance.md says what each layer holds and what was cut.

    python bench/sizes.py [--stage dev]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # infra, from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import record  # noqa: E402

TARGET_MB = 150.0


@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """What the synth's processes print (the CDK's node runtime, pip bundling each layer) goes
    to ``log``, not among the figures: its tail is printed only if the synth fails. The file
    descriptors themselves are redirected, so child processes' output is caught too."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with log.open("wb") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    except BaseException:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print("synth failed; the end of its output:", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        for fd in saved:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with quiet(Path(tmp) / "synth.log"):  # the CDK's runtime talks from its import on
            from infra.app import build_app
            from infra.bundling import LAMBDA_UNZIPPED_LIMIT_MB
            from infra.sizes import duplicates, function_sizes

            app, _ = build_app(args.stage, outdir=tmp)
            app.synth()
        took = time.perf_counter() - started
        sizes = function_sizes(Path(tmp))
        extra = duplicates(Path(tmp))
    print(f"synth of stage {args.stage} with bundling: {took:.0f} s")
    limit = LAMBDA_UNZIPPED_LIMIT_MB
    print(f"unzipped MiB (code + layers); target {TARGET_MB:.0f}, Lambda's limit {limit}")
    for name, parts in sorted(sizes.items(), key=lambda item: -sum(item[1].values())):
        total = sum(parts.values())
        verdict = "PASS" if total <= TARGET_MB else "MISS"
        detail = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
        print(f"  {total:7.1f} MiB  <= {TARGET_MB:.0f} {verdict}  {name}  ({detail})")
        record("sizes", f"function {name}", total, "MiB", ratio=total / TARGET_MB)
    for name, found in extra.items():
        print(f"  dup {sum(found.values()):.1f} MiB in two layers of {name}: {sorted(found)}")


if __name__ == "__main__":
    main()

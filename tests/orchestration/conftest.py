"""End-to-end orchestration tests share the runtime fixtures of ``tests/runtime``."""

from tests.runtime.conftest import Recorder, agents_dir, make_runtime, recorder

__all__ = ["Recorder", "agents_dir", "make_runtime", "recorder"]

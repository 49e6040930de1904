"""One process, several Lambda environments: each function's code sees its own os.environ
(its thread, the tasks and to_thread calls it starts), the process keeps its own."""

from __future__ import annotations

import asyncio
import os
import threading

from astromesh.local.environ import environment, install


def test_each_function_sees_its_own_environment_and_the_process_keeps_its_own(monkeypatch):
    monkeypatch.setattr(os, "environ", os.environ)  # the plain one is back afterwards
    install()
    monkeypatch.setenv("ASTROMESH_LOCAL_PROCESS_ONLY", "yes")
    seen: dict[str, dict[str, str | None]] = {}
    barrier = threading.Barrier(2)

    def function(name: str) -> None:
        variables = {"WHO": name}
        with environment(variables):
            barrier.wait()  # both are inside their environment at once

            async def in_a_task() -> str | None:
                return await asyncio.to_thread(os.getenv, "WHO")

            seen[name] = {
                "who": os.environ.get("WHO"),
                "getenv": os.getenv("WHO"),
                "task": asyncio.run(in_a_task()),
                "process": os.environ.get("ASTROMESH_LOCAL_PROCESS_ONLY"),
            }
            os.environ["WRITTEN"] = name  # a cold-start resolver's write
            barrier.wait()
        assert variables["WRITTEN"] == name

    threads = [threading.Thread(target=function, args=(n,)) for n in ("api", "ingestion")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for name in ("api", "ingestion"):
        assert seen[name] == {"who": name, "getenv": name, "task": name, "process": None}
    assert "WHO" not in os.environ and "WRITTEN" not in os.environ
    assert os.environ["ASTROMESH_LOCAL_PROCESS_ONLY"] == "yes"

"""``astromesh`` client commands (``cost``, ``traces``, ``trace``) run as a user runs them:
a separate process talking HTTP to a server the test serves, with none of this process's
``ASTROMESH_*`` settings (only the key given), off the test's event loop (the server runs on
it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


async def astromesh_client(
    *args: str, key: str | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTROMESH_")}
    env.update(PYTHONPATH=str(REPO / "layers" / "runtime"), COLUMNS=str(columns))
    if key:
        env["ASTROMESH_API_KEY"] = key
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "astromesh.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

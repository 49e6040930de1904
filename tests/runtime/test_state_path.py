"""Where the SQLite state goes: in Lambda a relative path is taken from /tmp, since the code
folder is read-only there (the api function failed with Errno 30 writing .astromesh)."""

from __future__ import annotations

from pathlib import Path

from astromesh.runtime import AgentRuntime

REPO_AGENTS = Path(__file__).resolve().parents[2] / "agents"


def test_a_relative_state_path_is_under_tmp_in_lambda() -> None:
    runtime = AgentRuntime(REPO_AGENTS, env={"AWS_LAMBDA_FUNCTION_NAME": "astromesh-dev-api"})
    assert runtime.sqlite_path() == Path("/tmp/.astromesh/state.db")
    assert runtime.state_dirs() == [Path("/tmp/.astromesh")]


def test_elsewhere_it_stays_as_configured(tmp_path: Path) -> None:
    assert AgentRuntime(REPO_AGENTS, env={}).sqlite_path() == Path(".astromesh/state.db")
    absolute = str(tmp_path / "s.db")
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": "f", "ASTROMESH_STATE_PATH": absolute}
    assert AgentRuntime(REPO_AGENTS, env=lambda_env).sqlite_path() == Path(absolute)


def test_an_empty_state_path_is_unset(tmp_path: Path) -> None:
    """The templates declare ASTROMESH_STATE_PATH empty (for sam's --env-vars): the default,
    under /tmp in Lambda, not the code folder ('.') as Path('') would be."""
    env = {"AWS_LAMBDA_FUNCTION_NAME": "f", "ASTROMESH_STATE_PATH": ""}
    assert AgentRuntime(tmp_path, env=env).sqlite_path() == Path("/tmp/.astromesh/state.db")
    assert AgentRuntime(tmp_path, env={"ASTROMESH_STATE_PATH": ""}).sqlite_path() == Path(
        ".astromesh/state.db"
    )

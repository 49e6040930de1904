"""The cold-start resolver (/opt/astromesh-env): secrets and parameters into the environment."""

from __future__ import annotations

import json

import pytest
from infra.lambda_env.astromesh_env import resolve

pytestmark = pytest.mark.infra

SECRETS = {
    "arn:db": {"username": "astromesh", "password": "p@ss/w:rd?", "host": "db.internal",
               "port": 5432},
    "arn:keys": {"OPENAI_API_KEY": "sk-1", "ANTHROPIC_API_KEY": ""},
    "arn:gpu": {"api_key": "k"},
}  # fmt: skip


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def secret(self, arn: str) -> str:
        self.calls.append(arn)
        return json.dumps(SECRETS[arn])

    def parameter(self, name: str) -> str:
        return {"/astromesh/dev/websocket/callback-url": "https://ws.example/dev"}[name]


def test_every_entry_kind():
    fetch, env = Fetcher(), {}
    spec = [
        {"env": "DSN", "secret": "arn:db",
         "format": "postgresql://{username}:{password}@{host}:{port}/astromesh"},
        {"env": "GPU_KEY", "secret": "arn:gpu", "key": "api_key"},
        {"secret": "arn:keys"},
        {"env": "CALLBACK", "parameter": "/astromesh/dev/websocket/callback-url"},
        {"env": "DB_USER", "secret": "arn:db", "key": "username"},
    ]  # fmt: skip
    names = resolve(spec, env, secret=fetch.secret, parameter=fetch.parameter)
    assert env["DSN"] == "postgresql://astromesh:p%40ss%2Fw%3Ard%3F@db.internal:5432/astromesh"
    assert env["GPU_KEY"] == "k"
    assert env["OPENAI_API_KEY"] == "sk-1"
    assert "ANTHROPIC_API_KEY" not in env  # an empty placeholder is not a key
    assert env["CALLBACK"] == "https://ws.example/dev"
    assert env["DB_USER"] == "astromesh"
    assert names == sorted(env)
    assert fetch.calls.count("arn:db") == 1  # each secret is read once


def test_variables_already_set_win():
    fetch = Fetcher()
    env = {"DSN": "postgresql://local/dev", "OPENAI_API_KEY": "mine"}
    resolve(
        [{"env": "DSN", "secret": "arn:db", "format": "x"}, {"secret": "arn:keys"}],
        env,
        secret=fetch.secret,
        parameter=fetch.parameter,
    )
    assert env == {"DSN": "postgresql://local/dev", "OPENAI_API_KEY": "mine"}
    assert fetch.calls == ["arn:keys"]


def test_variables_the_template_declares_empty_are_filled():
    """The templates declare every variable empty for sam: empty is unset to the resolver."""
    fetch = Fetcher()
    env = {"DSN": "", "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "CALLBACK": ""}
    resolve(
        [{"env": "DSN", "secret": "arn:db", "key": "username"}, {"secret": "arn:keys"},
         {"env": "CALLBACK", "parameter": "/astromesh/dev/websocket/callback-url"}],
        env,
        secret=fetch.secret,
        parameter=fetch.parameter,
    )  # fmt: skip
    assert env == {
        "DSN": "astromesh",
        "OPENAI_API_KEY": "sk-1",
        "ANTHROPIC_API_KEY": "",  # the secret's placeholder is empty too: still unset
        "CALLBACK": "https://ws.example/dev",
    }


def test_a_missing_key_stops_the_cold_start():
    with pytest.raises(KeyError):
        resolve([{"env": "X", "secret": "arn:gpu", "key": "nope"}], {},
                secret=Fetcher().secret, parameter=Fetcher().parameter)  # fmt: skip

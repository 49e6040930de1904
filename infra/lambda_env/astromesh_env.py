#!/usr/bin/env python3
"""Lambda exec wrapper: read secrets and parameters into the environment, then start the runtime.

Shipped in the runtime layer as ``/opt/astromesh-env`` and named by ``AWS_LAMBDA_EXEC_WRAPPER``.
The runtime reads its settings from environment variables (``ASTROMESH_POSTGRES_DSN``,
``WHATSAPP_APP_SECRET``, provider API keys...), but a secret written into a function's
configuration is readable by anyone who may read the configuration. So the configuration
holds only *where* each value lives (``ASTROMESH_RESOLVE_ENV``), and this wrapper fetches the
values once per cold start, before the handler module is imported, then ``exec``s the
runtime (or the next wrapper, such as ADOT's ``/opt/otel-instrument``) with them.

``ASTROMESH_RESOLVE_ENV`` is a JSON list; each entry is one of::

    {"secret": ARN}                                 every key of a JSON secret -> a variable
    {"env": NAME, "secret": ARN, "key": K}          one key of a JSON secret
    {"env": NAME, "secret": ARN, "format": F}       F.format(**secret), each value URL-quoted
                                                    (a DSN or URL with a password in it)
    {"env": NAME, "parameter": PATH}                an SSM parameter (String)

A variable already set to a value is left alone, so ``sam local invoke --env-vars`` (and
``astromesh local --env-vars``) can give plain values instead; an empty one counts as unset
(the templates declare every variable the functions read empty, for sam to set). Any
failure stops the cold start with the reason: a function running with half its settings
would fail later, less clearly.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote

RESOLVE_ENV = "ASTROMESH_RESOLVE_ENV"
NEXT_WRAPPER_ENV = "ASTROMESH_NEXT_EXEC_WRAPPER"

Fetch = Callable[[str], str]


def resolve(
    spec: list[dict[str, Any]],
    env: MutableMapping[str, str],
    *,
    secret: Fetch,
    parameter: Fetch,
) -> list[str]:
    """Fill ``env`` from ``spec``; return the names set. Each secret is read once."""
    secrets: dict[str, Mapping[str, Any]] = {}

    def secret_fields(arn: str) -> Mapping[str, Any]:
        if arn not in secrets:
            value = json.loads(secret(arn))
            if not isinstance(value, dict):
                raise ValueError(f"secret {arn} does not hold a JSON object")
            secrets[arn] = value
        return secrets[arn]

    values: dict[str, str] = {}
    for entry in spec:
        name = entry.get("env")
        if name is not None and env.get(name):
            continue
        if "parameter" in entry:
            values[name] = parameter(entry["parameter"])
            continue
        fields = secret_fields(entry["secret"])
        if name is None:
            values.update(
                {k: _text(v) for k, v in fields.items() if not env.get(k) and v not in ("", None)}
            )
        elif "format" in entry:
            values[name] = entry["format"].format_map(
                {k: quote(_text(v), safe="") for k, v in fields.items()}
            )
        else:
            values[name] = _text(fields[entry["key"]])
    env.update(values)
    return sorted(values)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _aws_fetchers() -> tuple[Fetch, Fetch]:
    """Secrets Manager and SSM readers (boto3 ships with Lambda's Python runtime)."""
    import boto3

    session = boto3.session.Session()
    secrets = session.client("secretsmanager")
    ssm = session.client("ssm")

    def secret(arn: str) -> str:
        return secrets.get_secret_value(SecretId=arn)["SecretString"]

    def parameter(name: str) -> str:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]

    return secret, parameter


def main(argv: list[str]) -> None:
    spec = json.loads(os.environ.get(RESOLVE_ENV) or "[]")
    if spec:  # `[]` (sam local) needs no AWS client at all
        secret, parameter = _aws_fetchers()
        resolve(spec, os.environ, secret=secret, parameter=parameter)
    command = argv[1:]
    following = os.environ.get(NEXT_WRAPPER_ENV)
    if following:
        command = [following, *command]
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv)

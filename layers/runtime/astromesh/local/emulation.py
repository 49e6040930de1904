"""The AWS side of ``astromesh local``: moto's server holding the deployment's resources, and
the real handlers behind every Lambda invocation.

:class:`Emulation` starts moto in server mode (``ThreadedMotoServer``) on ``aws_port``, turns
Step Functions execution on through moto's ``/moto-api/config`` (moto runs the definitions
with its copy of LocalStack's ASL interpreter) and creates what the templates declare
(:mod:`astromesh.local.templates`): an IAM role, the functions, both state machines, the
buckets and their notifications, the secrets, the SSM parameters. Any client pointed at
``http://127.0.0.1:<aws_port>`` (``AWS_ENDPOINT_URL``, ``localstack-client``) sees them.

Every invocation runs the function's real ``handler.py`` in this process
(:class:`~astromesh.local.lambdas.LambdaFunction`): synchronous ``Invoke``, ``Event``
invocations (answered 202 at once, run in the background), a state machine's Lambda tasks
and S3 notifications alike. A function's environment is its template's, with these local
stand-ins (listed by :meth:`Emulation.stand_ins`) for what only exists in AWS:

- Lambda's own variables (function name, region, memory), credentials for moto, and
  ``AWS_ENDPOINT_URL`` so the function's boto3 clients reach this emulation;
- the state store: PostgreSQL at the DSN given (no RDS Proxy, no IAM tokens), else a SQLite
  file; Redis: the machine's (no ElastiCache TLS);
- ``/opt/...`` paths mapped to the function's layer folders (the agents);
- the WebSocket callback URL parameter: this emulation (``post_to_connection`` reaches the
  front's sockets, :mod:`astromesh.local.front`).

The exec wrapper named by ``AWS_LAMBDA_EXEC_WRAPPER`` runs at each cold start as in Lambda
(``infra/lambda_env/astromesh_env.py``, the file the runtime layer ships): secrets and
parameters are read from this emulation's Secrets Manager and SSM.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import threading
import zipfile
from collections.abc import Mapping, MutableMapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import requests
from botocore.config import Config
from moto.awslambda.exceptions import UnknownFunctionException
from moto.server import ThreadedMotoServer

from astromesh.local import moto_hooks
from astromesh.local.environ import install as install_layered_environ
from astromesh.local.lambdas import Invocation, LambdaFunction, error_payload
from astromesh.local.templates import Deployment, FunctionDef, is_unresolved

LAMBDA_ROLE = "astromesh-local-lambda"
STATES_ROLE = "astromesh-local-states"
EXEC_WRAPPER_PATH = Path("infra") / "lambda_env" / "astromesh_env.py"
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
"""The process's variables a function also gets: where its tools and Python live."""
AGENTS_DIR_ENV = "ASTROMESH_AGENTS_DIR"
REDIS_URL_ENV = "ASTROMESH_REDIS_URL"
WS_CALLBACK_URL_ENV = "ASTROMESH_WS_CALLBACK_URL"


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """How the emulation stands in for what only exists in AWS.

    Attributes:
        repo: the project's folder (``infra/`` for the exec wrapper).
        aws_port / host: where moto's server listens (loopback by default).
        redis_url: the Redis every function uses.
        postgres_dsn: the state store's PostgreSQL; None: SQLite at ``state_path``.
        agents_dir: replaces the agents layer's ``/opt/agents`` (default: the layer's
            folder from the templates, i.e. the project's ``agents/``).
        env_vars: SAM's ``--env-vars`` file format: ``{"Parameters": {...}}`` for every
            function, ``{"<function>": {...}}`` for one (logical id, name or folder name).
        secret_values: values for the templates' secrets' keys (and the variables their
            functions declare), such as the developer's ``WHATSAPP_APP_SECRET``.
    """

    repo: Path
    state_path: Path
    redis_url: str
    aws_port: int = 4566
    host: str = "127.0.0.1"
    postgres_dsn: str | None = None
    agents_dir: Path | None = None
    env_vars: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secret_values: Mapping[str, str] = field(default_factory=dict)


class Emulation:
    """moto's server with the deployment's resources and its functions bound (module doc).

    ``with Emulation(deployment, settings) as aws: aws.invoke("api", event)``
    """

    def __init__(self, deployment: Deployment, settings: LocalSettings) -> None:
        self.deployment = deployment
        self.settings = settings
        self.endpoint_url = f"http://{settings.host}:{settings.aws_port}"
        self.functions: dict[str, LambdaFunction] = {}
        self._post: moto_hooks.PostHandler | None = None
        self._delete: moto_hooks.DeleteHandler | None = None
        self._server: ThreadedMotoServer | None = None
        self._stack = ExitStack()
        self._background: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._wrapper: ModuleType | None = None
        self.skipped: dict[str, list[str]] = {}
        """Per function, the template variables left out: they name AWS-only resources."""

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Emulation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        install_layered_environ()
        # moto files every request under this account whatever the credentials: the
        # templates' ARNs name it (their own account, or moto's default when agnostic).
        previous = os.environ.get("MOTO_ACCOUNT_ID")
        os.environ["MOTO_ACCOUNT_ID"] = self.deployment.account
        self._stack.callback(_restore_env, "MOTO_ACCOUNT_ID", previous)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(
            ip_address=self.settings.host, port=self.settings.aws_port, verbose=False
        )
        self._server.start()
        self._stack.callback(self._server.stop)
        response = requests.post(
            f"{self.endpoint_url}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True},
                  "lambda": {"use_docker": False}},
            timeout=10,
        )  # fmt: skip
        response.raise_for_status()
        self._stack.enter_context(moto_hooks.lambda_invocations(self._on_invoke))
        self._stack.enter_context(moto_hooks.s3_notifications(self._on_notification))
        self._stack.enter_context(moto_hooks.step_functions(self.endpoint_url))
        self._stack.enter_context(moto_hooks.websocket_connections(self._on_post, self._on_delete))
        self._stack.callback(self._close_functions)
        self._create_resources()

    def stop(self) -> None:
        """Wait for background invocations, close every container, stop moto."""
        self.wait_idle(timeout=30)
        self._stack.close()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait for the ``Event`` invocations and notifications started so far."""
        with self._lock:
            running = list(self._background)
        for thread in running:
            thread.join(timeout)

    def attach_websocket(
        self, post: moto_hooks.PostHandler, delete: moto_hooks.DeleteHandler
    ) -> None:
        """Where ``post_to_connection`` / ``delete_connection`` go (the front's sockets);
        without one, every connection is gone (410)."""
        self._post, self._delete = post, delete

    def client(self, service: str) -> Any:
        """A boto3 client of this emulation."""
        return boto3.client(
            service,
            region_name=self.deployment.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key="test",
            config=Config(inject_host_prefix=False, retries={"max_attempts": 1}),
        )

    @property
    def access_key_id(self) -> str:
        """Any key will do: moto's account is set for the whole server (``start``)."""
        return "test"

    # -- resources --------------------------------------------------------------------------

    def _create_resources(self) -> None:
        deployment = self.deployment
        iam = self.client("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": []})
        roles = {
            name: iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            for name in (LAMBDA_ROLE, STATES_ROLE)
        }
        secrets = self.client("secretsmanager")
        for secret in deployment.secrets:
            secrets.create_secret(Name=secret.name, SecretString=self._seeded(secret.value))
        ssm = self.client("ssm")
        for name, value in deployment.parameters.items():
            value = self._parameter_value(name, value)
            if value is not None:
                ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        functions = self.client("lambda")
        for function in deployment.functions.values():
            environment = self.function_environment(function)
            functions.create_function(
                FunctionName=function.name,
                Runtime="python3.12",
                Role=roles[LAMBDA_ROLE],
                Handler=function.handler,
                Code={"ZipFile": _zip(function.handler_path)},
                Timeout=function.timeout,
                MemorySize=function.memory,
                Environment={"Variables": environment},
            )
            self.functions[function.name] = LambdaFunction(
                function.name,
                function.handler_path,
                attribute=function.handler_attribute,
                environment=lambda env=environment: dict(env),
                prepare=self._exec_wrapper,
                timeout_seconds=function.timeout,
                memory_mb=function.memory,
                region=deployment.region,
                account=deployment.account,
            )
        states = self.client("stepfunctions")
        for machine in deployment.state_machines:
            states.create_state_machine(
                name=machine.name,
                definition=machine.definition,
                roleArn=roles[STATES_ROLE],
                type=machine.type,
            )
        s3 = self.client("s3")
        for bucket in deployment.buckets:
            if deployment.region == "us-east-1":
                s3.create_bucket(Bucket=bucket)
            else:
                s3.create_bucket(
                    Bucket=bucket,
                    CreateBucketConfiguration={"LocationConstraint": deployment.region},
                )
        by_bucket: dict[str, list[dict[str, Any]]] = {}
        for notification in deployment.notifications:
            by_bucket.setdefault(notification.bucket, []).append(
                {
                    "LambdaFunctionArn": deployment.function_arn(notification.function),
                    "Events": list(notification.events),
                }
            )
        for bucket, configurations in by_bucket.items():
            s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={"LambdaFunctionConfigurations": configurations},
            )

    def _seeded(self, value: str) -> str:
        """A secret's initial value with the developer's values for its keys."""
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            return value
        if not isinstance(document, dict):
            return value
        wanted = set(document) | self._declared_secret_keys()
        for key in wanted:
            if self.settings.secret_values.get(key):
                document[key] = self.settings.secret_values[key]
        return json.dumps(document)

    def _declared_secret_keys(self) -> set[str]:
        """Variables some function declares empty: the cold-start resolver fills those from a
        whole secret (provider keys), so a developer's value for one belongs there too."""
        return {
            name
            for function in self.deployment.functions.values()
            for name, value in function.environment.items()
            if value == ""
        }

    def _parameter_value(self, name: str, value: Any) -> str | None:
        if not is_unresolved(value):
            return str(value)
        if name.endswith("/websocket/callback-url"):
            return self.endpoint_url  # the Management API of this emulation
        return None

    # -- environments -----------------------------------------------------------------------

    def function_environment(self, function: FunctionDef) -> dict[str, str]:
        """What the function's code sees in ``os.environ`` (module doc)."""
        deployment, settings = self.deployment, self.settings
        env: dict[str, str] = {
            name: value for name in PASSED_THROUGH if (value := os.environ.get(name)) is not None
        }
        skipped: list[str] = []
        for name, value in function.environment.items():
            if is_unresolved(value) and name != "ASTROMESH_RESOLVE_ENV":
                skipped.append(name)
                continue
            text = str(value)
            env[name] = self._opt_path(function, text) if text.startswith("/opt/") else text
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "AWS_REGION": deployment.region,
                "AWS_DEFAULT_REGION": deployment.region,
                "AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_ENDPOINT_URL": self.endpoint_url,
                # StartSyncExecution's "sync-" host prefix cannot reach a local endpoint.
                "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
                "LAMBDA_TASK_ROOT": str(function.folder),
                "TZ": ":UTC",
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            }
        )
        env.update(self._state_stand_ins(function))
        env[REDIS_URL_ENV] = settings.redis_url
        if settings.agents_dir is not None:
            env[AGENTS_DIR_ENV] = str(settings.agents_dir)
        for scope in ("Parameters", function.logical_id, function.name, function.key):
            env.update({k: str(v) for k, v in settings.env_vars.get(scope, {}).items()})
        self.skipped[function.name] = [name for name in skipped if name not in env]
        return env

    def _state_stand_ins(self, function: FunctionDef) -> dict[str, str]:
        backend = str(function.environment.get("ASTROMESH_STATE_BACKEND", "sqlite"))
        if self.settings.postgres_dsn is not None and backend in ("postgres", "tiered"):
            return {
                "ASTROMESH_POSTGRES_DSN": self.settings.postgres_dsn,
                "ASTROMESH_POSTGRES_IAM_AUTH": "false",
            }
        return {
            "ASTROMESH_STATE_BACKEND": "sqlite",
            "ASTROMESH_STATE_PATH": str(self.settings.state_path),
            "ASTROMESH_POSTGRES_DSN": "",
            "ASTROMESH_POSTGRES_IAM_AUTH": "false",
        }

    @staticmethod
    def _opt_path(function: FunctionDef, path: str) -> str:
        """``/opt/<x>`` in Lambda is a layer's ``<x>``: that folder of one of the function's
        layers (a bundled layer holds ``agents/``; an unbundled one *is* the folder)."""
        relative = Path(path).relative_to("/opt")
        for layer in function.layers:
            if (layer / relative).exists():
                return str(layer / relative)
            first, *rest = relative.parts
            if layer.name == first:
                return str(layer.joinpath(*rest))
        return path

    def stand_ins(self) -> dict[str, str]:
        """What differs from AWS, for the start-up summary."""
        settings = self.settings
        state = (
            "PostgreSQL at the DSN given (no RDS Proxy, no IAM auth tokens)"
            if settings.postgres_dsn
            else f"SQLite at {settings.state_path} (no RDS Proxy / PostgreSQL: --postgres-dsn)"
        )
        return {
            "state": state,
            "redis": f"{_redacted(settings.redis_url)} (no ElastiCache TLS / AUTH)",
            "secrets": "Secrets Manager and SSM on moto, read by the exec wrapper at cold start",
            "ws callback": f"{self.endpoint_url} (the Management API of this emulation)",
        }

    # -- the exec wrapper ---------------------------------------------------------------------

    def _exec_wrapper(self, env: MutableMapping[str, str] | None) -> None:
        """Lambda's exec wrapper at a cold start: fill the environment from the secrets."""
        if env is None or not env.get("AWS_LAMBDA_EXEC_WRAPPER"):
            return
        wrapper = self._wrapper_module()
        spec = json.loads(env.get("ASTROMESH_RESOLVE_ENV") or "[]")
        if spec:
            secret, parameter = wrapper._aws_fetchers()
            wrapper.resolve(spec, env, secret=secret, parameter=parameter)

    def _wrapper_module(self) -> ModuleType:
        if self._wrapper is None:
            path = self.settings.repo / EXEC_WRAPPER_PATH
            spec = importlib.util.spec_from_file_location("astromesh_local_exec_wrapper", path)
            if spec is None or spec.loader is None:
                raise ImportError(f"the exec wrapper {path} cannot be loaded")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._wrapper = module
        return self._wrapper

    # -- invocations --------------------------------------------------------------------------

    def function(self, name: str) -> LambdaFunction:
        """By physical name or folder name.

        Raises:
            KeyError: no such function (the message lists them).
        """
        return self.functions[self.deployment.function(name).name]

    def invoke(self, name: str, event: Any) -> Invocation:
        """One synchronous invocation of ``name``'s real handler."""
        invocation = self.function(name).invoke(event)
        if invocation.exception is not None:
            # What Lambda's runtime writes to the function's log group.
            trace = "".join(error_payload(invocation.exception)["stackTrace"]).rstrip()
            print(f"[astromesh local] {invocation.function} failed:\n{trace}", file=sys.stderr)
        return invocation

    def invoke_async(self, name: str, event: Any) -> None:
        """An ``Event`` invocation: accepted now, run in the background (not retried)."""

        def run() -> None:
            try:
                self.invoke(name, event)
            finally:
                with self._lock:
                    self._background.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"event-{name}", daemon=True)
        with self._lock:
            self._background.add(thread)
        thread.start()

    def _on_invoke(
        self, name: str, kind: str, payload: bytes, response_headers: dict[str, str]
    ) -> bytes:
        if name not in self.functions:
            raise UnknownFunctionException(self.deployment.function_arn(name))
        event = json.loads(payload or b"{}")
        if kind == "Event":
            self.invoke_async(name, event)
            return b""
        if kind == "DryRun":
            return b""
        invocation = self.invoke(name, event)
        if invocation.exception is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error_payload(invocation.exception)).encode()
        return json.dumps(invocation.answer).encode()

    def _on_notification(self, name: str, event: dict[str, Any]) -> None:
        if name in self.functions:
            self.invoke_async(name, event)

    def _on_post(self, connection_id: str, data: bytes) -> None:
        if self._post is None:
            raise moto_hooks.GoneException(connection_id)
        self._post(connection_id, data)

    def _on_delete(self, connection_id: str) -> None:
        if self._delete is not None:
            self._delete(connection_id)

    def _close_functions(self) -> None:
        for function in self.functions.values():
            try:
                function.close()
            except Exception as exc:  # noqa: BLE001 - one container's close must not stop others
                print(f"[astromesh local] closing {function.name}: {exc}", file=sys.stderr)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _zip(handler: Path) -> bytes:
    """The function's code as moto stores it (the real handler file)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(handler.name, handler.read_bytes())
    return buffer.getvalue()


def _redacted(url: str) -> str:
    """``redis://:password@host`` without the password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f":***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

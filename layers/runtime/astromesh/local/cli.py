"""``astromesh local``: serve the deployed shape; ``astromesh local invoke``: replay an event.

The heavy imports (moto, the CDK synth, uvicorn) happen inside the commands, so the rest of
the CLI starts without them and without the ``dev`` extra.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from astromesh.local.emulation import Emulation, LocalSettings
    from astromesh.local.templates import Deployment

app = typer.Typer(
    help="The deployed shape (API Gateway, Lambda, Step Functions, S3, Secrets Manager) on "
    "this machine, from the synthesized templates; no Docker.",
    add_completion=False,
)


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    aws_port: int
    stage: str
    region: str
    cdk_out: Path | None
    synth: bool
    agents: Path | None
    postgres_dsn: str | None
    redis_url: str | None
    state_path: Path | None
    env_vars: Path | None


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.callback(invoke_without_command=True)
def local(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="The API Gateway front (REST and WebSocket)")] = 8000,
    aws_port: Annotated[int, typer.Option(help="moto's AWS endpoint (LocalStack's port)")] = 4566,
    host: Annotated[
        str, typer.Option(help="Interface for both ports; loopback unless you mean otherwise")
    ] = "127.0.0.1",
    stage: Annotated[str, typer.Option(help="The CDK stage whose stacks are emulated")] = "dev",
    region: Annotated[
        str, typer.Option(help="Region of environment-agnostic templates")
    ] = "us-east-1",
    cdk_out: Annotated[
        Path | None, typer.Option(help="The cloud assembly [default: <project>/cdk.out]")
    ] = None,
    synth: Annotated[
        bool, typer.Option("--synth", help="Synthesize even when cdk.out is up to date")
    ] = False,
    agents: Annotated[
        Path | None,
        typer.Option(help="Agents folder instead of the agents layer's (the project's agents/)"),
    ] = None,
    postgres_dsn: Annotated[
        str | None,
        typer.Option(help="PostgreSQL (pgvector) for the state, as RDS would be; else SQLite"),
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="[default: redis://127.0.0.1:6379/0, or one started]")
    ] = None,
    state_path: Annotated[
        Path | None,
        typer.Option(help="SQLite state without --postgres-dsn [default: .astromesh/local/]"),
    ] = None,
    env_vars: Annotated[
        Path | None,
        typer.Option(
            help="Variables in sam's --env-vars format ({'Parameters': {...}, '<function>': "
            "{...}}), e.g. infra/sam-env.json"
        ),
    ] = None,
) -> None:
    """Serve the stage's REST and WebSocket APIs on --port over moto on --aws-port, running
    the real functions/*/handler.py for every invocation (module astromesh.local)."""
    options = Options(host, port, aws_port, stage, region, cdk_out, synth, agents,
                      postgres_dsn, redis_url, state_path, env_vars)  # fmt: skip
    if ctx.invoked_subcommand is not None:
        ctx.obj = options
        return
    serve(options)


@app.command()
def invoke(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="api, ws_message... or the full name")],
    event: Annotated[
        Path, typer.Option("--event", "-e", help="The event's JSON file ('-': stdin)")
    ],
    aws_port: Annotated[
        int | None, typer.Option(help="The running emulation's port [default: 4566]")
    ] = None,
) -> None:
    """Invoke FUNCTION with the event and print its response, on the running `astromesh local`
    (or on one started for this invocation when none answers on --aws-port). Exit 1 on a
    function error."""
    options: Options = ctx.obj
    if aws_port is not None:
        options = replace(options, aws_port=aws_port)
    try:
        text = sys.stdin.read() if str(event) == "-" else event.read_text(encoding="utf-8")
        payload = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(f"--event {event}: {exc}") from None
    answer, failed = _invoke_running(options, function, payload)
    if answer is None:
        answer, failed = _invoke_ephemeral(options, function, payload)
    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    if failed:
        typer.echo(f"function error: {answer.get('errorType', 'Unhandled')}", err=True)
        raise typer.Exit(1)


# -- serving ------------------------------------------------------------------------------------


def _settings(options: Options, repo: Path, redis_url: str) -> LocalSettings:
    from astromesh.local.emulation import LocalSettings

    env_vars: dict[str, dict[str, str]] = {}
    if options.env_vars is not None:
        env_vars = _read_env_vars(options.env_vars)
    state_path = options.state_path or repo / ".astromesh" / "local" / f"{options.stage}.db"
    return LocalSettings(
        repo=repo,
        state_path=state_path.resolve(),
        redis_url=redis_url,
        aws_port=options.aws_port,
        host=options.host,
        postgres_dsn=options.postgres_dsn,
        agents_dir=options.agents.resolve() if options.agents else None,
        env_vars=env_vars,
        secret_values=dict(os.environ),
    )


def _read_env_vars(path: Path) -> dict[str, dict[str, str]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(f"--env-vars {path}: {exc}") from None
    if not isinstance(document, dict):
        raise _fail(f"--env-vars {path}: expected an object of objects")
    for scope, variables in document.items():
        if not isinstance(variables, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in variables.values()
        ):
            raise _fail(f"--env-vars {path}: {scope!r} must map names to strings")
    return {scope: {k: str(v) for k, v in variables.items()} for scope, variables in
            document.items()}  # fmt: skip


def _deployment(options: Options, repo: Path) -> tuple[Deployment, float | None]:
    from astromesh.local.synth import SynthError, ensure_synthesized
    from astromesh.local.templates import TemplateError, read_deployment

    outdir = (options.cdk_out or repo / "cdk.out").resolve()
    try:
        synth_seconds = ensure_synthesized(repo, outdir, options.stage, force=options.synth)
        return read_deployment(outdir, options.stage, region=options.region), synth_seconds
    except (SynthError, TemplateError) as exc:
        raise _fail(str(exc), 1) from None


@contextlib.contextmanager
def _running(options: Options) -> Any:
    """Redis, the sample key, the emulation; yields (emulation, key, synth seconds)."""
    from astromesh.local.emulation import Emulation
    from astromesh.local.services import RedisService, ServiceError, seed_sample_key
    from astromesh.local.synth import find_repo

    try:
        repo = find_repo()
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    deployment, synth_seconds = _deployment(options, repo)
    redis_service = RedisService(options.redis_url)
    try:
        redis_url = redis_service.start()
    except ServiceError as exc:
        raise _fail(str(exc), 1) from None
    try:
        settings = _settings(options, repo, redis_url)
        try:
            key, _ = seed_sample_key(
                repo,
                sqlite_path=None if settings.postgres_dsn else settings.state_path,
                postgres_dsn=settings.postgres_dsn,
            )
        except ServiceError as exc:
            raise _fail(str(exc), 1) from None
        emulation = Emulation(deployment, settings)
        try:
            emulation.start()
        except OSError as exc:
            raise _fail(f"moto cannot listen on {options.host}:{options.aws_port}: {exc}") from None
        try:
            yield emulation, key, synth_seconds, redis_service
        finally:
            emulation.stop()
    finally:
        redis_service.stop()


def serve(options: Options) -> None:
    from astromesh.local.front import Front, FrontServer

    started = time.perf_counter()
    if not _is_loopback(options.host):
        typer.echo(
            f"warning: --host {options.host} exposes moto (no authentication: secrets "
            "included) and the front without TLS to the network",
            err=True,
        )
    with _running(options) as (emulation, key, synth_seconds, redis_service):
        server = FrontServer(Front(emulation), options.host, options.port)
        try:
            server.bind()  # listening before "ready" is printed
        except OSError as exc:
            where = f"{options.host}:{options.port}"
            raise _fail(f"the front cannot listen on {where}: {exc}") from None
        _print_summary(options, emulation, key, synth_seconds, redis_service.started_here)
        typer.echo(f"ready in {time.perf_counter() - started:.1f} s (Ctrl+C stops)")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl+C it handled
            server.run()
    typer.echo("stopped")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _print_summary(
    options: Options,
    emulation: Emulation,
    key: str,
    synth_seconds: float | None,
    redis_started: bool,
) -> None:
    deployment = emulation.deployment
    base = f"http://{options.host}:{options.port}"
    lines = [
        f"astromesh local: stage {deployment.stage}, account {deployment.account}, "
        f"region {deployment.region}"
        + (f" (cdk.out synthesized in {synth_seconds:.1f} s)" if synth_seconds else ""),
        "",
        f"  REST API       {base}/v1/...   (or {base}/{deployment.rest_stage}/v1/...)",
        f"  WebSocket      ws://{options.host}:{options.port}/?api_key=KEY&agent=NAME",
    ]
    for route in deployment.rest_routes:
        if "{proxy+}" not in route.path and route.path != "/":
            lines.append(f"  {route.method:<5} {route.path}  -> {route.function}")
    lines += [
        f"  AWS endpoint   http://{options.host}:{options.aws_port}  (moto)",
        f"                 export AWS_ENDPOINT_URL=http://{options.host}:{options.aws_port} "
        f"AWS_ACCESS_KEY_ID={emulation.access_key_id} AWS_SECRET_ACCESS_KEY=test "
        f"AWS_DEFAULT_REGION={deployment.region} AWS_DISABLE_HOST_PREFIX_INJECTION=true",
        f"  Sample key     {key}  (tenant events, every agent: the key of events/)",
        "",
        "Emulated (from the templates):",
        "  functions      "
        + ", ".join(sorted(f.key for f in deployment.functions.values()))
        + "  (the real handlers, in this process)",
    ]
    for machine in deployment.state_machines:
        lines.append(f"  state machine  {machine.name} ({machine.type})")
    for notification in deployment.notifications:
        lines.append(
            f"  bucket         {notification.bucket}: {', '.join(notification.events)} -> "
            f"{notification.function}"
        )
    lines.append("  secrets        " + ", ".join(s.name for s in deployment.secrets))
    for name, value in emulation.stand_ins().items():
        lines.append(f"  {name:<14} {value}")
    if redis_started:
        lines.append("                 (redis-server started for this session)")
    lines += [
        "",
        "Not emulated: RDS Proxy and its IAM tokens, ElastiCache TLS and AUTH, the GPU model "
        "endpoint, the VPC, X-Ray, CloudWatch (logs and metrics print here), API Gateway "
        "throttling, Lambda timeouts and asynchronous retries.",
    ]
    skipped = sorted({name for names in emulation.skipped.values() for name in names})
    if skipped:
        lines.append("Template variables left out (AWS-only values): " + ", ".join(skipped))
    typer.echo("\n".join(lines))


# -- invoking -----------------------------------------------------------------------------------


def _invoke_running(options: Options, function: str, payload: Any) -> tuple[Any, bool]:
    """(answer, function error) from the emulation on --aws-port; (None, False) if none."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = boto3.client(
        "lambda",
        region_name=options.region,
        endpoint_url=f"http://{_connect_host(options.host)}:{options.aws_port}",
        aws_access_key_id="test",  # moto files every request under the templates' account
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=900),
    )
    try:
        names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    except EndpointConnectionError:
        return None, False
    except ClientError as exc:
        raise _fail(f"the emulation on port {options.aws_port} answered: {exc}", 1) from None
    name = _match(function, names)
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    body = response["Payload"].read()
    return (json.loads(body) if body else None), "FunctionError" in response


def _match(function: str, names: list[str]) -> str:
    dashed = function.replace("_", "-")
    for name in names:
        if function == name or name.endswith(f"-{dashed}"):
            return name
    raise _fail(f"no function {function!r} (known: {', '.join(sorted(names))})")


def _connect_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _invoke_ephemeral(options: Options, function: str, payload: Any) -> tuple[Any, bool]:
    """Start the emulation for this one invocation (its logs on stderr), then stop it."""
    from astromesh.local.lambdas import error_payload
    from astromesh.local.services import free_port

    options = replace(options, aws_port=free_port())
    typer.echo(f"(no emulation on the AWS port: starting one on {options.aws_port})", err=True)
    with contextlib.redirect_stdout(sys.stderr), _running(options) as (emulation, *_):
        try:
            target = emulation.function(function)
        except KeyError as exc:
            raise _fail(str(exc.args[0])) from None
        invocation = emulation.invoke(target.name, payload)
        emulation.wait_idle()
    if invocation.exception is not None:
        return error_payload(invocation.exception), True
    return invocation.answer, False

"""Every per-stage setting in one place, and the names derived from a stage.

A stage is chosen with ``cdk synth -c stage=dev|prod`` (``cdk.json`` defaults to ``dev``). The
few values that differ per account rather than per stage (the GPU image, an ADOT layer ARN,
an alarm e-mail) can be given as context too; see :func:`settings_for`.

Names that other stacks must know *before* the resource exists (a state machine's ARN given
to the functions that start it) are derived here from the stage, never read from the other
stack: a reference would make the stacks depend on each other in a cycle (infra/README.md,
"Cycles avoided").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from astromesh.pipeline import MAX_PARALLEL_ACTIONS

PROJECT = "astromesh"
STAGES = ("dev", "prod")


@dataclass(frozen=True, slots=True)
class GpuSettings:
    """The OpenAI-compatible model server on GPU instances (ECS on EC2, behind an internal ALB).

    The default image is vLLM's OpenAI server; any image serving ``/v1/chat/completions`` on
    ``port`` (TGI's messages API too) works with the same provider entry.
    """

    image_uri: str = "vllm/vllm-openai:v0.6.6"
    model: str = "Qwen/Qwen2.5-7B-Instruct"
    served_model_name: str = "qwen2.5-7b-instruct"
    instance_type: str = "g6.xlarge"
    port: int = 8000
    min_tasks: int = 1
    max_tasks: int = 2
    requests_per_task: int = 20
    """Target of the service's scaling on ALB requests per target (per minute)."""
    max_model_len: int = 8192
    # -- the endpoint's TLS (infra/stacks/model_serving.py): required unless allow_plaintext
    domain_name: str | None = None
    """The name the functions call (``https://<domain_name>/v1``), e.g.
    ``models.internal.example.com``; an alias record in a private hosted zone of the VPC."""
    certificate_arn: str | None = None
    """An ACM certificate for ``domain_name``, in the stage's region (the ALB's HTTPS listener)."""
    hosted_zone_id: str | None = None
    """An existing private hosted zone of the VPC that holds ``domain_name``; none: the stack
    creates one for the domain's parent."""
    allow_plaintext: bool = False
    """Serve plain HTTP inside the VPC (the bearer key in clear text): an explicit opt-in."""


@dataclass(frozen=True, slots=True)
class StageSettings:
    """What differs between stages. Times are seconds unless named otherwise."""

    name: str
    max_azs: int
    nat_gateways: int
    retain_data: bool
    """Keep databases, buckets and logs when a stack is deleted (and protect the database)."""
    log_retention: str
    """A ``aws_logs.RetentionDays`` member name."""
    # -- data
    redis_node_type: str
    redis_replicas: int
    db_instance_type: str
    db_multi_az: bool
    db_allocated_gb: int
    db_max_allocated_gb: int
    db_backup_days: int
    state_backend: str
    """``ASTROMESH_STATE_BACKEND`` of every function. PostgreSQL: registered agents and API
    keys need a durable SQL store; Redis holds the circuit breaker and the WebSocket registry."""
    # -- functions
    reserved_concurrency: Mapping[str, int]
    """Per function: caps the connections a function can open to PostgreSQL and the load it
    can put on model providers. Keep the sum well under the account's concurrency limit."""
    # -- ingress
    api_rate_limit: float
    api_burst_limit: int
    ws_rate_limit: float
    ws_burst_limit: int
    max_body_bytes: int
    """The app's own request body limit (``ASTROMESH_MAX_BODY_BYTES``); API Gateway's fixed
    limit is 10 MB for REST and 128 KB per WebSocket message (32 KB frames)."""
    # -- orchestration
    sfn_max_concurrency: int
    standard_timeout_minutes: int
    # -- model serving (None: no GPU endpoint in this stage)
    gpu: GpuSettings | None
    # -- observability
    daily_cost_alarm_usd: float
    adot_layer_arn: str | None = None
    """The ADOT Python layer for this region (arm64), e.g.
    ``arn:aws:lambda:<region>:901920570463:layer:aws-otel-python-arm64-ver-1-32-0:2``."""
    alarm_email: str | None = None
    bundle: bool = True
    """Build the layers with pip. Tests turn it off (``-c skipBundling=true``): the layers are
    then their source folders as they are, which synthesizes but does not deploy."""


DEV = StageSettings(
    name="dev",
    max_azs=2,
    nat_gateways=1,
    retain_data=False,
    log_retention="TWO_WEEKS",
    redis_node_type="cache.t4g.micro",
    redis_replicas=0,
    db_instance_type="t4g.micro",
    db_multi_az=False,
    db_allocated_gb=20,
    db_max_allocated_gb=50,
    db_backup_days=1,
    state_backend="postgres",
    reserved_concurrency={"orchestration_step": 10, "tool_executor": 20, "ingestion": 2},
    api_rate_limit=20,
    api_burst_limit=40,
    ws_rate_limit=20,
    ws_burst_limit=40,
    max_body_bytes=1024 * 1024,
    sfn_max_concurrency=MAX_PARALLEL_ACTIONS,
    standard_timeout_minutes=60,
    gpu=None,
    daily_cost_alarm_usd=20.0,
)

PROD = StageSettings(
    name="prod",
    max_azs=3,
    nat_gateways=2,
    retain_data=True,
    log_retention="THREE_MONTHS",
    redis_node_type="cache.r7g.large",
    redis_replicas=1,
    db_instance_type="r7g.large",
    db_multi_az=True,
    db_allocated_gb=100,
    db_max_allocated_gb=1000,
    db_backup_days=14,
    state_backend="postgres",
    reserved_concurrency={"orchestration_step": 100, "tool_executor": 200, "ingestion": 10},
    api_rate_limit=200,
    api_burst_limit=400,
    ws_rate_limit=200,
    ws_burst_limit=400,
    max_body_bytes=1024 * 1024,
    sfn_max_concurrency=MAX_PARALLEL_ACTIONS,
    standard_timeout_minutes=240,
    gpu=GpuSettings(min_tasks=1, max_tasks=4),
    daily_cost_alarm_usd=500.0,
)

_STAGES = {s.name: s for s in (DEV, PROD)}


def settings_for(stage: str, context: Mapping[str, Any] | None = None) -> StageSettings:
    """The settings of ``stage``, with the account-specific context values applied.

    Context keys: ``gpuImageUri``, ``gpuModel``, ``gpuDomainName``, ``gpuCertificateArn``,
    ``gpuHostedZoneId``, ``gpuAllowPlaintext`` (when the stage serves a GPU model; ``gpu=true``
    turns the endpoint on in a stage that has none), ``adotLayerArn``, ``alarmEmail``,
    ``skipBundling``.
    """
    if stage not in _STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    context = context or {}
    settings = _STAGES[stage]
    gpu = settings.gpu
    if gpu is None and _flag(context.get("gpu")):
        gpu = GpuSettings()
    if gpu is not None:
        gpu = dataclasses.replace(
            gpu,
            image_uri=context.get("gpuImageUri") or gpu.image_uri,
            model=context.get("gpuModel") or gpu.model,
            domain_name=context.get("gpuDomainName") or gpu.domain_name,
            certificate_arn=context.get("gpuCertificateArn") or gpu.certificate_arn,
            hosted_zone_id=context.get("gpuHostedZoneId") or gpu.hosted_zone_id,
            allow_plaintext=_flag(context.get("gpuAllowPlaintext")) or gpu.allow_plaintext,
        )
    return dataclasses.replace(
        settings,
        gpu=gpu,
        adot_layer_arn=context.get("adotLayerArn") or settings.adot_layer_arn,
        alarm_email=context.get("alarmEmail") or settings.alarm_email,
        bundle=not _flag(context.get("skipBundling")),
    )


def _flag(value: Any) -> bool:
    """Context values arrive as strings from ``-c key=value`` and as JSON from cdk.json."""
    return value is True or str(value).lower() in ("1", "true", "yes")


@dataclass(frozen=True, slots=True)
class Names:
    """Physical names and parameter paths derived from the stage."""

    stage: str

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.stage}"

    def stack(self, part: str) -> str:
        return f"{self.prefix}-{part}"

    def function(self, name: str) -> str:
        return f"{self.prefix}-{name.replace('_', '-')}"

    def state_machine(self, kind: str) -> str:
        """``kind``: ``express`` (sync runs), ``standard`` (async and channel runs) or
        ``workflows`` (workflow runs)."""
        return f"{self.prefix}-runs-{kind}"

    def parameter(self, path: str) -> str:
        """An SSM parameter name under ``/astromesh/<stage>/``."""
        return f"/{PROJECT}/{self.stage}/{path}"

    def secret(self, name: str) -> str:
        return f"{PROJECT}/{self.stage}/{name}"

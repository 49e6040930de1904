"""Pieces every stack builds the same way: Lambda roles, log groups, layers, nag suppressions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import environment as env
from infra.bundling import ARCHITECTURE, RUNTIME, LayerRecipe, layer_code
from infra.config import Names, StageSettings

ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
"""What a function in a VPC needs to attach its network interfaces (as in AWS's
AWSLambdaVPCAccessExecutionRole); EC2 does not scope the Describe calls to resources."""

POSTGRES_DB = "astromesh"
POSTGRES_PORT = 5432
POSTGRES_APP_USER = "astromesh_app"
"""The database role the functions use (through RDS Proxy, with IAM tokens); the migrations
custom resource creates it and makes it the owner of the runtime's tables."""


def postgres_proxy_dsn(endpoint: str) -> str:
    """The functions' ``ASTROMESH_POSTGRES_DSN``: no password (each connection presents an IAM
    token), the proxy's certificate checked (ACM, chained to Amazon's roots in certifi)."""
    return (
        f"postgresql://{POSTGRES_APP_USER}@{endpoint}:{POSTGRES_PORT}/{POSTGRES_DB}"
        "?sslmode=verify-full"
    )


MANAGED_BASIC_EXECUTION = (
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
)
PYTHON_312 = (
    "Python 3.12 by design (issue #8): the layers' wheels are fetched for cp312; "
    "move the runtime and infra/bundling.py's --python-version together."
)


def documents_bucket_name(names: Names) -> str:
    """Globally unique and known to every stack without a reference (account and region are
    the deploying stack's own pseudo-parameters)."""
    return f"{names.prefix}-documents-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def arn_finding(stack: Stack, construct: Construct, suffix: str) -> str:
    """How cdk-nag names a wildcard finding on ``construct``'s ARN (``<Logical.Arn>...``)."""
    cfn = construct.node.default_child
    return f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(cfn)}.Arn>{suffix}]"


def arn_region(stack: Stack) -> str:
    """The region as cdk-nag writes it in a finding on an ARN the stack formats: the literal
    region when the stack has a concrete environment (``cdk synth`` with a profile, the CLI
    always gives one), ``<AWS::Region>`` when it is environment-agnostic."""
    return "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region


def arn_account(stack: Stack) -> str:
    """The account as cdk-nag writes it in a finding (see :func:`arn_region`)."""
    return "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account


def removal(settings: StageSettings) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY


def log_group(scope: Construct, id: str, settings: StageSettings, name: str) -> logs.LogGroup:
    """A log group with the stage's retention (Lambda's own would keep logs forever)."""
    return logs.LogGroup(
        scope,
        id,
        log_group_name=name,
        retention=logs.RetentionDays[settings.log_retention],
        removal_policy=removal(settings),
    )


def suppress(construct: Construct, reasons: Mapping[str, str]) -> None:
    """Acknowledge cdk-nag findings on ``construct`` (and its children), each with its reason.

    Keys are rule ids (``AwsSolutions-S1``) or, for rules with several findings per
    resource, one finding (``AwsSolutions-IAM5[Resource::*]``): cdk-nag 3 has no blanket
    acknowledgement of a rule's findings, which keeps each wildcard visible here.
    """
    cdk.Validations.of(construct).acknowledge(
        *(cdk.Acknowledgment(id=rule, reason=reason) for rule, reason in reasons.items())
    )


def function_role(
    scope: Construct, id: str, *, description: str, logs_to: logs.ILogGroup
) -> iam.Role:
    """A function's own role: write its log group, manage its VPC interfaces; nothing else
    until the caller grants it."""
    role = iam.Role(
        scope,
        id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )
    logs_to.grant_write(role)
    role.add_to_principal_policy(iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"]))
    suppress(
        role,
        {
            "AwsSolutions-IAM5[Resource::*]": "EC2 network-interface actions for Lambda in a VPC "
            "and X-Ray's PutTraceSegments / PutTelemetryRecords have no resource-level "
            "permissions: AWS requires '*' for exactly these actions (tests/infra checks it)."
        },
    )
    return role


def layer(
    scope: Construct, id: str, recipe: LayerRecipe, settings: StageSettings, description: str
) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        id,
        code=layer_code(recipe, bundle=settings.bundle),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description=description,
    )


def resolve_environment(stack: Stack, entries: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The variables that make the cold-start resolver (``/opt/astromesh-env``) fill the
    environment from Secrets Manager / SSM before the handler is imported."""
    if not entries:
        return {}
    return {
        "AWS_LAMBDA_EXEC_WRAPPER": env.EXEC_WRAPPER,
        env.RESOLVE_ENV: stack.to_json_string(list(entries)),
    }


def python_function(
    scope: Construct,
    id: str,
    *,
    function_name: str,
    code: lambda_.Code,
    role: iam.IRole,
    logs_to: logs.ILogGroup,
    memory_mb: int,
    timeout_s: int,
    layers: Sequence[lambda_.ILayerVersion],
    environment: Mapping[str, str],
    description: str,
    handler: str = "handler.handler",
    reserved: int | None = None,
    **options: Any,
) -> lambda_.Function:
    """Python 3.12 on arm64 with active X-Ray tracing: every Astromesh function is one.
    ``options`` go to ``lambda_.Function`` as they are (VPC placement, async retries)."""
    function = lambda_.Function(
        scope,
        id,
        function_name=function_name,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=code,
        role=role,
        log_group=logs_to,
        memory_size=memory_mb,
        timeout=Duration.seconds(timeout_s),
        layers=list(layers),
        environment=dict(environment),
        description=description,
        reserved_concurrent_executions=reserved,
        tracing=lambda_.Tracing.ACTIVE,
        **options,
    )
    suppress(function, {"AwsSolutions-L1": PYTHON_312})
    return function

"""State and secrets: Redis (Valkey), PostgreSQL with pgvector, the documents bucket, secrets.

- ElastiCache Valkey, in the isolated subnets, TLS and AUTH: the hot tier (circuit breaker,
  WebSocket connections, dedupe keys). One node in dev, a primary and a replica across AZs
  in prod.
- RDS PostgreSQL 16 with TLS forced: the durable tier (runs, history, registered agents,
  API keys, pgvector). A custom resource enables ``vector`` and applies the runtime's
  migrations on every deploy that changes them.
- S3: the documents bucket (its notifications to ``ingestion`` are added by the runtime
  stack, where the function is: a bucket's notification needs the function to exist).
- Secrets Manager: database credentials (generated), the Redis AUTH token (generated), the
  provider API keys, the WhatsApp and Telegram settings and the GPU server's key. The last
  four hold a JSON object whose keys become environment variables of those names (see
  infra/lambda_env/astromesh_env.py); set them with ``aws secretsmanager put-secret-value``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aws_cdk import CustomResource, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra import environment as env
from infra.bundling import runtime_recipe
from infra.config import Names, StageSettings
from infra.functions import CHANNEL_SECRET_KEYS
from infra.stacks import _common
from infra.stacks.network import NetworkStack

REDIS_PORT = 6379
POSTGRES_VERSION = rds.PostgresEngineVersion.VER_16_9
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"

_NOT_ROTATED = (
    "Set by operators (provider keys, channel tokens issued by Meta/Telegram); there is no "
    "rotation Lambda for third-party credentials."
)


class DataStack(Stack):
    """Redis, PostgreSQL (+ migrations), the documents bucket and every secret."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: StageSettings,
        names: Names,
        network: NetworkStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.settings = settings
        self.names = names
        vpc = network.vpc

        # -- secrets operators fill -------------------------------------------------------
        self.provider_keys = self._operator_secret(
            "ProviderKeys", "provider-keys", {}, "Model provider API keys: {ENV_NAME: key}"
        )
        self.channel_secrets = {
            channel: self._operator_secret(
                f"{channel.capitalize()}Secret",
                channel,
                dict.fromkeys(keys, ""),
                f"{channel} channel settings: the {channel.upper()}_* variables",
            )
            for channel, keys in CHANNEL_SECRET_KEYS.items()
        }
        self.gpu_key = secretsmanager.Secret(
            self,
            "GpuApiKey",
            secret_name=names.secret("gpu-api-key"),
            description="Key of the GPU model server (vLLM --api-key), as {api_key}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key="api_key",
                exclude_punctuation=True,
                password_length=48,
            ),
        )
        _common.suppress(
            self.gpu_key,
            {
                "AwsSolutions-SMG4": "The model server reads the key "
                "at start; rotating it means restarting the tasks (a deploy)."
            },
        )

        # -- Redis (Valkey) ---------------------------------------------------------------
        redis_sg = ec2.SecurityGroup(
            self, "RedisSg", vpc=vpc, description="Valkey: functions only",
            allow_all_outbound=False,
        )  # fmt: skip
        redis_sg.add_ingress_rule(network.functions_sg, ec2.Port.tcp(REDIS_PORT), "functions")
        self.redis_auth = secretsmanager.Secret(
            self,
            "RedisAuth",
            secret_name=names.secret("redis-auth"),
            description="Valkey AUTH token, as {password}",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",
                generate_string_key="password",
                exclude_punctuation=True,
                password_length=64,
            ),
        )
        _common.suppress(
            self.redis_auth,
            {
                "AwsSolutions-SMG4": "ElastiCache rotates AUTH "
                "tokens only through a replication-group update; rotated by a deploy."
            },
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnets",
            description="Astromesh Valkey: isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        replicated = settings.redis_replicas > 0
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_description=f"Astromesh {settings.name} hot state",
            engine="valkey",
            engine_version="8.0",
            cache_node_type=settings.redis_node_type,
            num_cache_clusters=1 + settings.redis_replicas,
            automatic_failover_enabled=replicated,
            multi_az_enabled=replicated,
            port=REDIS_PORT,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[redis_sg.security_group_id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=self.redis_auth.secret_value_from_json("password").unsafe_unwrap(),
            snapshot_retention_limit=7 if settings.retain_data else 0,
            auto_minor_version_upgrade=True,
        )
        if not replicated:
            _common.suppress(
                self.redis,
                {
                    "AwsSolutions-AEC4": "dev: one node; prod runs a "
                    "replica in another AZ with automatic failover."
                },
            )
        self.redis_url_format = (
            f"rediss://:{{password}}@{self.redis.attr_primary_end_point_address}:"
            f"{self.redis.attr_primary_end_point_port}/0"
        )
        """For the resolver: the AUTH token from :attr:`redis_auth` fills ``{password}``."""

        # -- PostgreSQL -------------------------------------------------------------------
        db_sg = ec2.SecurityGroup(
            self, "PostgresSg", vpc=vpc, description="PostgreSQL: functions only",
            allow_all_outbound=False,
        )  # fmt: skip
        db_sg.add_ingress_rule(network.functions_sg, ec2.Port.tcp(5432), "functions")
        self.database = rds.DatabaseInstance(
            self,
            "Postgres",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            instance_type=ec2.InstanceType(settings.db_instance_type),
            vpc=vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[db_sg],
            credentials=rds.Credentials.from_generated_secret(
                "astromesh", secret_name=names.secret("postgres")
            ),
            database_name=_common.POSTGRES_DB,
            multi_az=settings.db_multi_az,
            allocated_storage=settings.db_allocated_gb,
            max_allocated_storage=settings.db_max_allocated_gb,
            storage_encrypted=True,
            backup_retention=Duration.days(settings.db_backup_days),
            deletion_protection=settings.retain_data,
            removal_policy=RemovalPolicy.SNAPSHOT
            if settings.retain_data
            else RemovalPolicy.DESTROY,
            iam_authentication=True,
            cloudwatch_logs_exports=["postgresql", "upgrade"],
            monitoring_interval=Duration.seconds(60),
            parameter_group=rds.ParameterGroup(
                self,
                "PostgresParams",
                engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
                parameters={"rds.force_ssl": "1"},
            ),
        )
        self.db_secret = self.database.secret
        reasons = {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonRDSEnhancedMonitoringRole]": "Enhanced monitoring's role uses the policy "
            "AWS provides for it.",
            "AwsSolutions-RDS11": "The default port: only the functions' security group "
            "reaches it, in isolated subnets; a non-default port adds nothing there.",
            "AwsSolutions-SMG4": "Single-user rotation would break the new connections of warm "
            "functions that cached the password at cold start; alternating-users rotation "
            "with an application user is the planned fix (infra/README.md, open items).",
        }
        if not settings.db_multi_az:
            reasons["AwsSolutions-RDS3"] = "dev: single AZ to save cost; prod is Multi-AZ."
        if not settings.retain_data:
            reasons["AwsSolutions-RDS10"] = (
                "dev: no deletion protection, so dev stacks can be torn down; prod has it."
            )
        _common.suppress(self.database, reasons)

        # -- the documents bucket ---------------------------------------------------------
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        _common.suppress(
            access_logs,
            {
                "AwsSolutions-S1": "This is the access-log bucket; "
                "logging it into itself would loop."
            },
        )
        self.documents = s3.Bucket(
            self,
            "Documents",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            bucket_name=_common.documents_bucket_name(names),
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="documents/",
            removal_policy=RemovalPolicy.RETAIN,
        )

        # -- migrations: pgvector + the runtime's schema ----------------------------------
        self._migrations(network, db_sg)

    def _operator_secret(
        self, id: str, name: str, placeholder: dict[str, str], description: str
    ) -> secretsmanager.Secret:
        """A JSON secret whose keys become environment variables; created with empty values
        (ignored by the resolver) for operators to fill. CloudFormation rewrites it only if
        this placeholder changes."""
        secret = secretsmanager.Secret(
            self,
            id,
            secret_name=self.names.secret(name),
            description=description,
            secret_object_value={
                k: SecretValue.unsafe_plain_text(v) for k, v in placeholder.items()
            },
        )
        _common.suppress(secret, {"AwsSolutions-SMG4": _NOT_ROTATED})
        return secret

    def _migrations(self, network: NetworkStack, db_sg: ec2.SecurityGroup) -> None:
        name = self.names.function("migrations")
        logs_to = _common.log_group(self, "MigrationsLogs", self.settings, f"/aws/lambda/{name}")
        role = _common.function_role(
            self, "MigrationsRole", description="Astromesh schema migrations", logs_to=logs_to
        )
        self.db_secret.grant_read(role)
        runtime_layer = _common.layer(
            self, "RuntimeLayer", runtime_recipe(), self.settings, "astromesh runtime (migrations)"
        )
        function = _common.python_function(
            self,
            "Migrations",
            function_name=name,
            code=lambda_.Code.from_asset(str(MIGRATIONS_DIR), exclude=["__pycache__"]),
            handler="handler.on_event",
            role=role,
            logs_to=logs_to,
            memory_mb=512,
            timeout_s=300,
            layers=[runtime_layer],
            environment=_common.resolve_environment(
                self,
                [
                    {
                        "env": env.POSTGRES_DSN_ENV,
                        "secret": self.db_secret.secret_arn,
                        "format": _common.POSTGRES_DSN_FORMAT,
                    }
                ],
            ),
            description="CREATE EXTENSION vector; astromesh.stores.migrations",
            vpc=network.vpc,
            vpc_subnets=network.app_subnets,
            security_groups=[network.functions_sg],
        )
        provider = cr.Provider(self, "MigrationsProvider", on_event_handler=function)
        _common.suppress(
            provider,
            {
                f"AwsSolutions-IAM4[{_common.MANAGED_BASIC_EXECUTION}]": "The CDK provider "
                "framework's own function uses AWSLambdaBasicExecutionRole (logs only).",
                _common.arn_finding(self, function, ":*"): "The provider framework may invoke "
                "the migrations function's versions (':*').",
                "AwsSolutions-L1": "The provider framework's runtime is chosen by aws-cdk-lib.",
            },
        )
        resource = CustomResource(
            self,
            "Schema",
            service_token=provider.service_token,
            resource_type="Custom::AstromeshSchema",
            properties={"Extensions": ["vector"], "Migrations": migrations_digest()},
        )
        resource.node.add_dependency(self.database)


def migrations_digest() -> str:
    """Changes when a migration is added, so the custom resource runs on that deploy."""
    from astromesh.stores.migrations import load_migrations

    digest = hashlib.sha256()
    for migration in load_migrations("postgres"):
        digest.update(f"{migration.version}:{migration.name}:{migration.sql}".encode())
    return digest.hexdigest()[:16]

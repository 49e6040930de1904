"""State and secrets: Redis (Valkey), PostgreSQL with pgvector, the documents bucket, secrets.

- ElastiCache Valkey, in the isolated subnets, TLS and AUTH: the hot tier (circuit breaker,
  WebSocket connections, dedupe keys). One node in dev, a primary and a replica across AZs
  in prod.
- RDS PostgreSQL 16 with TLS forced: the durable tier (runs, history, registered agents,
  API keys, pgvector), behind RDS Proxy. The functions hold no database secret: they connect
  to the proxy as ``astromesh_app`` with an IAM auth token per connection (TLS required,
  certificate checked), and their roles may ``rds-db:connect`` as that user on that proxy
  only. The proxy logs in to the instance with the ``postgres-app`` secret; only the proxy,
  the migrations function and the two rotation functions reach the instance.
- Two generated credentials, both rotated every 30 days by single-user rotation: the master
  (``postgres``), which only the migrations function reads, and the application user
  (``postgres-app``), which only the proxy and its rotation read. Single-user rotation is
  safe here because no function caches either password: the proxy re-reads its secret and
  the migrations function reads the master's on each run.
- A custom resource (infra/migrations/handler.py), on every deploy that changes it, as
  master: ``CREATE EXTENSION vector``, creates ``astromesh_app`` if missing (its password set
  only then: rotation owns it afterwards), grants it the schema and applies the runtime's
  migrations as that role, so the tables belong to the role the functions use. The rotations
  start after it, when the role exists.
- S3: the documents bucket (its notifications to ``ingestion`` are added by the runtime
  stack, where the function is: a bucket's notification needs the function to exist).
- Secrets Manager: the two database credentials (above), the Redis AUTH token (generated),
  the provider API keys, the WhatsApp and Telegram settings and the GPU server's key. The last
  four hold a JSON object whose keys become environment variables of those names (see
  infra/lambda_env/astromesh_env.py); set them with ``aws secretsmanager put-secret-value``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, CustomResource, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.bundling import runtime_recipe
from infra.config import Names, StageSettings
from infra.functions import CHANNEL_SECRET_KEYS
from infra.stacks import _common
from infra.stacks.network import NetworkStack

REDIS_PORT = 6379
POSTGRES_VERSION = rds.PostgresEngineVersion.VER_16_9
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
ROTATION_DAYS = 30
PASSWORD_EXCLUDE = " %+~`#$&*()|[]{}:;<>?!'/@\"\\"
"""aws-cdk-lib's default for RDS passwords (characters that break DSNs, shells or JSON), given
to the generated secrets and their rotations alike, so a rotated password obeys the same rule."""

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
        # Admitted by the proxy, the migrations function and the rotation functions, each
        # added where it is made (``connections.allow_default_port_from``); not the functions.
        db_sg = ec2.SecurityGroup(
            self, "PostgresSg", vpc=vpc, description="PostgreSQL: proxy, migrations, rotation",
            allow_all_outbound=False,
        )  # fmt: skip
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
        """The master's credentials: read by the migrations function only."""
        # Runtime stacks deployed before the functions moved to RDS Proxy import this ARN;
        # CloudFormation refuses to drop an export still in use, so it stays for one release
        # (infra/README.md, open items) and goes once every stage's runtime has deployed.
        self.export_value(self.db_secret.secret_arn)
        self.database.add_rotation_single_user(
            automatically_after=Duration.days(ROTATION_DAYS),
            exclude_characters=PASSWORD_EXCLUDE,
            vpc_subnets=network.data_subnets,
        )
        self.app_secret = rds.DatabaseSecret(
            self,
            "PostgresAppSecret",
            username=_common.POSTGRES_APP_USER,
            master_secret=self.db_secret,
            secret_name=names.secret("postgres-app"),
            exclude_characters=PASSWORD_EXCLUDE,
        ).attach(self.database)
        """``astromesh_app``'s credentials: read by RDS Proxy (and rotation) only."""
        secretsmanager.SecretRotation(
            self,
            "PostgresAppRotation",
            application=secretsmanager.SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER,
            secret=self.app_secret,
            target=self.database,
            vpc=vpc,
            vpc_subnets=network.data_subnets,
            automatically_after=Duration.days(ROTATION_DAYS),
            exclude_characters=PASSWORD_EXCLUDE,
        )
        self.proxy = self._proxy(network, vpc)
        self.postgres_dsn = _common.postgres_proxy_dsn(self.proxy.endpoint)
        """The functions' ``ASTROMESH_POSTGRES_DSN`` (no secret in it)."""
        reasons = {
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonRDSEnhancedMonitoringRole]": "Enhanced monitoring's role uses the policy "
            "AWS provides for it.",
            "AwsSolutions-RDS11": "The default port: only the proxy, migrations and rotation "
            "security groups reach it, in isolated subnets; a non-default port adds nothing.",
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
        CfnOutput(
            self, "DocumentsBucketName", value=self.documents.bucket_name,
            description="RAG documents: s3://<bucket>/<pipeline>/... is indexed by ingestion",
        )  # fmt: skip

        # -- migrations: pgvector, the application role, the runtime's schema ---------------
        schema = self._migrations(network)
        # Waits for the instance and for its security group's rules (the one admitting the
        # migrations function among them), not for the instance's whole subtree: that holds
        # the master secret's rotation schedule, which waits for the schema (below).
        schema.node.add_dependency(self.database.node.default_child, db_sg)
        for secret in (self.db_secret, self.app_secret):
            # The first rotation (immediate, when the schedule is created) waits for the role
            # to exist and for the migrations to have read the master's first password.
            secret.node.find_child("RotationSchedule").node.add_dependency(schema)

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

    def _proxy(self, network: NetworkStack, vpc: ec2.IVpc) -> rds.DatabaseProxy:
        """RDS Proxy in front of the instance: TLS and IAM auth required, logging in to the
        instance with the application user's secret. Its own security group admits the
        functions; the instance admits it (added by ``add_proxy``)."""
        proxy_sg = ec2.SecurityGroup(
            self, "PostgresProxySg", vpc=vpc, description="RDS Proxy: functions only",
            allow_all_outbound=False,
        )  # fmt: skip
        proxy_sg.add_ingress_rule(
            network.functions_sg, ec2.Port.tcp(_common.POSTGRES_PORT), "functions"
        )
        proxy_sg.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block),
            ec2.Port.tcp(443),
            "Secrets Manager (its interface endpoint, private DNS): the proxy's credentials",
        )
        proxy = self.database.add_proxy(
            "PostgresProxy",
            vpc=vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[proxy_sg],
            secrets=[self.app_secret],
            require_tls=True,
            iam_auth=True,
            db_proxy_name=f"{self.names.prefix}-postgres",
        )
        # AWS::RDS::DBProxyTargetGroup takes no Tags (CloudFormation rejects the app-wide
        # project/stage tags that aws-cdk-lib would render on it).
        target_group = proxy.node.find_child("ProxyTargetGroup")
        assert isinstance(target_group, rds.CfnDBProxyTargetGroup)
        target_group.add_property_deletion_override("Tags")
        return proxy

    def _migrations(self, network: NetworkStack) -> CustomResource:
        name = self.names.function("migrations")
        logs_to = _common.log_group(self, "MigrationsLogs", self.settings, f"/aws/lambda/{name}")
        role = _common.function_role(
            self, "MigrationsRole", description="Astromesh schema migrations", logs_to=logs_to
        )
        self.db_secret.grant_read(role)
        self.app_secret.grant_read(role)
        # Its own group: the instance admits it (the functions' group reaches only the proxy).
        security_group = ec2.SecurityGroup(
            self, "MigrationsSg", vpc=network.vpc,
            description="Migrations function: PostgreSQL and AWS APIs", allow_all_outbound=False,
        )  # fmt: skip
        security_group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(443),
            "Secrets Manager (VPC endpoint) and X-Ray (through the NAT)",
        )
        self.database.connections.allow_default_port_from(security_group, "migrations")
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
            # No resolver: the handler reads both secrets itself on every event.
            environment={},
            description="CREATE EXTENSION vector; astromesh_app; astromesh.stores.migrations",
            vpc=network.vpc,
            vpc_subnets=network.app_subnets,
            security_groups=[security_group],
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
            properties={
                "MasterSecretArn": self.db_secret.secret_arn,
                "AppSecretArn": self.app_secret.secret_arn,
                "Database": _common.POSTGRES_DB,
                "Extensions": ["vector"],
                "Migrations": migrations_digest(),
            },
        )
        return resource


def migrations_digest() -> str:
    """Changes when a migration is added, so the custom resource runs on that deploy."""
    from astromesh.stores.migrations import load_migrations

    digest = hashlib.sha256()
    for migration in load_migrations("postgres"):
        digest.update(f"{migration.version}:{migration.name}:{migration.sql}".encode())
    return digest.hexdigest()[:16]

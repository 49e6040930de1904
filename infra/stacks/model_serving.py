"""GPU model serving, apart from the functions: an OpenAI-compatible server on ECS GPU instances.

Why ECS and not a SageMaker endpoint: SageMaker's ``InvokeEndpoint`` needs SigV4-signed
requests in its own envelope, while the runtime's ``vllm`` / ``openai_compat`` providers
speak plain OpenAI HTTP with a bearer key. An ECS service behind an internal load balancer
is exactly such an endpoint, so the router needs no AWS-specific provider.

- The image is a parameter (``-c gpuImageUri=...``, default vLLM's OpenAI server); the
  container gets ``--model`` / ``--served-model-name`` and its key as ``VLLM_API_KEY`` from
  Secrets Manager (the same secret the functions read as ``ASTROMESH_GPU_API_KEY``).
- Autoscaling: tasks on ALB requests per target; GPU instances follow through the capacity
  provider's managed scaling (one task per GPU instance).
- TLS: every request carries the bearer key, so the ALB listens on HTTPS only (443, a TLS 1.3
  policy, the ACM certificate of ``-c gpuCertificateArn``) under ``-c gpuDomainName``, an
  alias record in a private hosted zone of the VPC (``-c gpuHostedZoneId``, or one created
  for exactly that name, so it cannot hide the rest of its parent domain from the VPC). Its
  security group admits 443 from the functions' group only. A stage without the two fails
  to synthesize, unless ``-c gpuAllowPlaintext=true`` keeps the old plain-HTTP listener on
  80 (with a warning): :func:`check_tls`. TLS ends at the ALB: the hop to the task
  (``gpu.port``, admitted from the ALB's group only) is HTTP.
- The base URL, ``https://<gpuDomainName>/v1``, is written to SSM
  (``/astromesh/<stage>/model-serving/endpoint``); the runtime stack reads it at deploy time
  into ``ASTROMESH_GPU_ENDPOINT``. The providers' httpx client verifies the certificate
  against certifi's bundle (``models/_http.py``), which holds the Amazon roots ACM's public
  certificates chain to; a private-CA certificate would need ``SSL_CERT_FILE`` on the
  functions. An agent refers to the server through a ProviderConfig entry
  (infra/examples/providers.gpu.yaml)::

      providers:
        gpu:
          type: vllm
          endpoint: ${ASTROMESH_GPU_ENDPOINT}
          api_key_env: ASTROMESH_GPU_API_KEY
          models: [qwen2.5-7b-instruct]
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import GpuSettings, Names, StageSettings
from infra.stacks import _common
from infra.stacks.data import DataStack
from infra.stacks.network import NetworkStack
from infra.stacks.runtime import GPU_ENDPOINT_PARAMETER

HTTPS_PORT = 443
PLAINTEXT_PORT = 80
"""Only with ``-c gpuAllowPlaintext=true``."""
TLS_POLICY = elbv2.SslPolicy.TLS13_13
"""TLS 1.3 only: the only clients are the functions (Python 3.12, OpenSSL 3), so nothing
needs TLS 1.2's older cipher suites."""


def check_tls(gpu: GpuSettings, stage: str) -> bool:
    """Whether the endpoint is served over TLS; raises if it is neither TLS nor explicitly
    allowed to be plain HTTP (secure by default: the requests carry the bearer key)."""
    missing = [
        key
        for key, value in (("gpuDomainName", gpu.domain_name),
                           ("gpuCertificateArn", gpu.certificate_arn))
        if not value
    ]  # fmt: skip
    if not missing:
        if not gpu.certificate_arn.startswith("arn:"):
            raise ValueError(
                f"gpuCertificateArn must be an ACM certificate ARN, got {gpu.certificate_arn!r}"
            )
        if "." not in gpu.domain_name.strip("."):
            raise ValueError(
                f"gpuDomainName {gpu.domain_name!r} is not a DNS name the certificate can be "
                "for (e.g. models.internal.example.com)"
            )
        return True
    if gpu.allow_plaintext:
        return False
    raise ValueError(
        f"stage {stage} serves a GPU model, whose requests carry its bearer key: serve it over "
        f"TLS with -c gpuDomainName=<name> -c gpuCertificateArn=<ACM certificate ARN for that "
        f"name> (missing: {', '.join(missing)}), or opt in to plain HTTP inside the VPC with "
        "-c gpuAllowPlaintext=true (not recommended)"
    )


def server_command(gpu: GpuSettings) -> list[str]:
    """Arguments for vLLM's OpenAI server (the image's entrypoint)."""
    return [
        "--model", gpu.model,
        "--served-model-name", gpu.served_model_name,
        "--port", str(gpu.port),
        "--max-model-len", str(gpu.max_model_len),
    ]  # fmt: skip


class ModelServingStack(Stack):
    """:attr:`endpoint` is the server's OpenAI base URL."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: StageSettings,
        names: Names,
        network: NetworkStack,
        data: DataStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        gpu = settings.gpu
        if gpu is None:
            raise ValueError(f"stage {settings.name} serves no GPU model (settings.gpu is None)")
        tls = check_tls(gpu, settings.name)
        listener_port = HTTPS_PORT if tls else PLAINTEXT_PORT
        vpc = network.vpc

        alb_sg = ec2.SecurityGroup(
            self, "AlbSg", vpc=vpc, description="Model server ALB: functions only",
            allow_all_outbound=True,
        )  # fmt: skip
        alb_sg.add_ingress_rule(network.functions_sg, ec2.Port.tcp(listener_port), "functions")
        server_sg = ec2.SecurityGroup(
            self, "ServerSg", vpc=vpc, description="Model server tasks: the ALB only",
            allow_all_outbound=True,
        )  # fmt: skip
        server_sg.add_ingress_rule(alb_sg, ec2.Port.tcp(gpu.port), "load balancer")

        # -- GPU capacity -------------------------------------------------------------------
        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        instance_sg = ec2.SecurityGroup(
            self, "InstanceSg", vpc=vpc, description="GPU instances", allow_all_outbound=True
        )
        instance_role = iam.Role(
            self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com")
        )
        template = ec2.LaunchTemplate(
            self,
            "GpuTemplate",
            instance_type=ec2.InstanceType(gpu.instance_type),
            machine_image=ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.GPU),
            role=instance_role,
            security_group=instance_sg,
            user_data=ec2.UserData.for_linux(),
            require_imdsv2=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        200, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        instances = autoscaling.AutoScalingGroup(
            self,
            "GpuInstances",
            vpc=vpc,
            vpc_subnets=network.app_subnets,
            launch_template=template,
            min_capacity=gpu.min_tasks,
            max_capacity=gpu.max_tasks,
        )
        capacity = ecs.AsgCapacityProvider(
            self,
            "GpuCapacity",
            auto_scaling_group=instances,
            enable_managed_termination_protection=False,
        )
        # The drain hook's SNS topic, encrypted like every other topic here.
        cluster.add_asg_capacity_provider(
            capacity, topic_encryption_key=kms.Key(self, "DrainHookKey", enable_key_rotation=True)
        )

        # -- the server ---------------------------------------------------------------------
        task = ecs.Ec2TaskDefinition(self, "Task", network_mode=ecs.NetworkMode.AWS_VPC)
        task.add_container(
            "server",
            image=ecs.ContainerImage.from_registry(gpu.image_uri),
            command=server_command(gpu),
            gpu_count=1,
            memory_reservation_mib=12 * 1024,
            secrets={"VLLM_API_KEY": ecs.Secret.from_secrets_manager(data.gpu_key, "api_key")},
            port_mappings=[ecs.PortMapping(container_port=gpu.port)],
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="model-server",
                log_group=_common.log_group(
                    self, "ServerLogs", settings, f"/astromesh/{settings.name}/model-server"
                ),
            ),
        )
        _common.suppress(
            task,
            {
                "AwsSolutions-ECS2": "The only plain variable is AWS_REGION (added by "
                "aws-cdk-lib); the key, VLLM_API_KEY, is a container secret from Secrets Manager."
            },
        )
        service = ecs.Ec2Service(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            desired_count=gpu.min_tasks,
            security_groups=[server_sg],
            vpc_subnets=network.app_subnets,
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=capacity.capacity_provider_name, weight=1
                )
            ],
            # One task per GPU instance: a rolling deploy stops a task before starting one.
            min_healthy_percent=0,
            max_healthy_percent=100,
            health_check_grace_period=Duration.minutes(15),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )

        # -- the internal endpoint ----------------------------------------------------------
        alb_logs = s3.Bucket(
            self,
            "AlbLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        _common.suppress(
            alb_logs,
            {
                "AwsSolutions-S1": "Holds the ALB's access logs; logging "
                "the log bucket itself adds nothing."
            },
        )
        alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=network.app_subnets,
            security_group=alb_sg,
        )
        if Token.is_unresolved(self.region):
            # ELB's log delivery account depends on the region: an env-agnostic synth (tests)
            # cannot name it. `cdk deploy` always has a region (CDK_DEFAULT_REGION).
            _common.suppress(
                alb,
                {
                    "AwsSolutions-ELB2": "Access logs are enabled whenever the "
                    "stack has a concrete region, as every deployment does."
                },
            )
        else:
            alb.log_access_logs(alb_logs, prefix="model-server")
        if tls:
            listener = alb.add_listener(
                "Https",
                port=HTTPS_PORT,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(gpu.certificate_arn)],
                ssl_policy=TLS_POLICY,
                open=False,
            )
        else:
            listener = alb.add_listener("Http", port=PLAINTEXT_PORT, open=False)
            Annotations.of(self).add_warning_v2(
                "astromesh:gpu-plaintext",
                "gpuAllowPlaintext: the GPU model server is plain HTTP on port 80, so every "
                "request's bearer key (VLLM_API_KEY) and every prompt and completion cross the "
                "VPC in clear text; give -c gpuDomainName and -c gpuCertificateArn instead.",
            )
        targets = listener.add_targets(
            "Server",
            port=gpu.port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service],
            health_check=elbv2.HealthCheck(path="/health", interval=Duration.seconds(30)),
            deregistration_delay=Duration.seconds(30),
        )
        scaling = service.auto_scale_task_count(
            min_capacity=gpu.min_tasks, max_capacity=gpu.max_tasks
        )
        scaling.scale_on_request_count(
            "Requests", requests_per_target=gpu.requests_per_task, target_group=targets
        )
        if tls:
            domain = gpu.domain_name.rstrip(".")
            zone = (
                route53.PrivateHostedZone.from_private_hosted_zone_id(
                    self, "Zone", gpu.hosted_zone_id
                )
                if gpu.hosted_zone_id
                # A zone of the name itself, the record at its apex: a zone of the parent would
                # answer for every name under it inside the VPC, shadowing their public records.
                else route53.PrivateHostedZone(
                    self,
                    "Zone",
                    zone_name=domain,
                    vpc=vpc,
                    comment=f"Astromesh {settings.name}: the GPU model server's name",
                )
            )
            route53.ARecord(
                self,
                "Alias",
                zone=zone,
                record_name=f"{domain}.",  # fully qualified: an imported zone has no name
                target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(alb)),
            )
            self.endpoint = f"https://{domain}/v1"
        else:
            self.endpoint = f"http://{alb.load_balancer_dns_name}/v1"
        ssm.StringParameter(
            self,
            "Endpoint",
            parameter_name=names.parameter(GPU_ENDPOINT_PARAMETER),
            string_value=self.endpoint,
            description="OpenAI-compatible base URL of the GPU model server",
        )
        _common.suppress(
            instance_role,
            {
                "AwsSolutions-IAM5[Action::ecs:Submit*]": "The ECS agent's permissions, as "
                "aws-cdk-lib grants them to container instances.",
                "AwsSolutions-IAM5[Resource::*]": "ECS agent actions (DiscoverPollEndpoint, "
                "Poll, StartTelemetrySession...) have no resource-level permissions.",
            },
        )
        asg_name = self.get_logical_id(instances.node.default_child)
        _common.suppress(
            instances,
            {
                f"AwsSolutions-IAM4[{_common.MANAGED_BASIC_EXECUTION}]": "aws-cdk-lib's ECS "
                "drain hook function logs with AWSLambdaBasicExecutionRole.",
                "AwsSolutions-IAM5[Resource::*]": "The drain hook lists container instances "
                "(ecs:ListContainerInstances etc. have no resource-level permissions).",
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:"
                f"{_common.arn_region(self)}:{_common.arn_account(self)}:"
                f"autoScalingGroup:*:autoScalingGroupName/<{asg_name}>]": "The "
                "drain hook completes lifecycle actions of this group (its id is generated).",
                "AwsSolutions-L1": "The drain hook's runtime is chosen by aws-cdk-lib.",
                "AwsSolutions-AS3": "Scaling events are in the cluster's events and Container "
                "Insights; no notification topic for them.",
                "AwsSolutions-SNS3": "aws-cdk-lib's lifecycle-hook topic: only Auto Scaling "
                "publishes to it.",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": "Auto Scaling publishes to "
                "the encrypted drain-hook topic: KMS's GenerateDataKey* family, on that key only.",
            },
        )

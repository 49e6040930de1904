"""The VPC every function, data store and model server lives in.

Subnets: public (NAT gateways, nothing else), private with egress (functions and GPU model
servers: model providers, the Graph API and Telegram are on the internet) and isolated (Redis
and PostgreSQL: no route out at all). Endpoints keep the hot AWS calls off the NAT: S3
(gateway, free), Secrets Manager and SSM (the cold-start resolver), Step Functions (starting
runs; ``sync-states`` for the Express machine's ``StartSyncExecution``).

No ``execute-api`` endpoint on purpose: with private DNS it would capture the public WebSocket
API's hostname and ``post_to_connection`` would fail; those calls go through the NAT.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import StageSettings
from infra.stacks import _common


class NetworkStack(Stack):
    """The VPC and the security group shared by the functions (the data stores admit it)."""

    def __init__(
        self, scope: Construct, id: str, *, settings: StageSettings, **kwargs: Any
    ) -> None:
        super().__init__(scope, id, **kwargs)
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=logs.RetentionDays[settings.log_retention],
            removal_policy=RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=settings.max_azs,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        self.app_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.data_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        for name, service in (
            ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
            ("Ssm", ec2.InterfaceVpcEndpointAwsService.SSM),
            ("StepFunctions", ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS),
            ("StepFunctionsSync", ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS_SYNC),
        ):
            endpoint = self.vpc.add_interface_endpoint(
                name, service=service, subnets=self.app_subnets
            )
            _common.suppress(
                endpoint,
                {
                    "AwsSolutions-EC23": "The endpoint admits HTTPS from the VPC's own CIDR "
                    "(a token cdk-nag cannot read), not from the internet."
                },
            )

        self.functions_sg = ec2.SecurityGroup(
            self,
            "Functions",
            vpc=self.vpc,
            description="Astromesh Lambda functions: admitted by Redis, PostgreSQL, model servers",
            allow_all_outbound=True,
        )

"""Ingress: the REST API (Lambda proxy to ``api``, webhooks to their channel functions) and the
WebSocket API (``$connect`` / ``$disconnect`` / ``$default``).

REST: every path goes to ``api`` (``/{proxy+}``), except the channel webhooks of docs/api.md,
which go to their own functions so a burst of WhatsApp deliveries cannot starve the API.
Throttling per stage, JSON access logs, X-Ray. Bodies: API Gateway's own limit is 10 MB and
cannot be lowered; the app refuses anything above ``ASTROMESH_MAX_BODY_BYTES`` with 413
before reading it. The integration timeout is API Gateway's 29 s: longer runs use
``?mode=async`` (the Standard machine).

WebSocket: one stage; its callback URL (what ``post_to_connection`` needs) is published in
SSM and read by the frame-posting functions at cold start, and they are allowed
``execute-api:ManageConnections`` on this stage only. Both are attached here rather than in
the runtime stack, which this stack depends on (integrations need the functions).
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import Names, StageSettings
from infra.functions import BY_NAME, WEBHOOK_ROUTES, WS_ROUTES
from infra.stacks import _common
from infra.stacks.runtime import WS_CALLBACK_PARAMETER, RuntimeStack


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings`` has no struct class in Python: a plain implementation."""

    def __init__(
        self, destination: apigwv2.IAccessLogDestination, format: apigw.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


_APP_AUTH = (
    "The app authenticates every request itself (API keys bound to tenants, "
    "astromesh.channels.security); webhooks check the platform's signature or secret token."
)


class ApiStack(Stack):
    """:attr:`rest` always; :attr:`websocket` and :attr:`ws_stage` once the WebSocket
    functions exist."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: StageSettings,
        names: Names,
        runtime: RuntimeStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.settings = settings
        self.names = names
        self.rest = self._rest_api(runtime)
        self.websocket: apigwv2.WebSocketApi | None = None
        self.ws_stage: apigwv2.WebSocketStage | None = None
        if all(name in runtime.functions for name in WS_ROUTES.values()):
            self._websocket_api(runtime)
        self._outputs(runtime)

    def _outputs(self, runtime: RuntimeStack) -> None:
        """What a user needs after ``cdk deploy``, under names they can find: the CLI prints
        them, ``--outputs-file`` saves them, ``describe-stacks`` reads them back."""
        CfnOutput(
            self, "RestApiUrl", value=self.rest.url,
            description="The /v1 REST API: <url>v1/health, <url>v1/agents/<name>/run",
        )  # fmt: skip
        for channel, path in WEBHOOK_ROUTES.items():
            if BY_NAME[channel].name in runtime.functions:
                CfnOutput(
                    self, f"{channel.capitalize()}WebhookUrl",
                    value=self.rest.url_for_path(path),
                    description=f"The {channel} webhook to register with the platform",
                )  # fmt: skip
        if self.ws_stage is not None:
            CfnOutput(
                self, "WebSocketUrl", value=self.ws_stage.url,
                description="wss://...?api_key=<key>&agent=<name> (frames as /v1/ws/agent)",
            )  # fmt: skip

    # -- REST ---------------------------------------------------------------------------------

    def _rest_api(self, runtime: RuntimeStack) -> apigw.RestApi:
        access_logs = _common.log_group(
            self, "RestAccessLogs", self.settings, f"/astromesh/{self.settings.name}/rest-access"
        )
        api = apigw.RestApi(
            self,
            "Rest",
            rest_api_name=self.names.stack("rest"),
            description="Astromesh /v1 REST API and channel webhooks",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=self.settings.name,
                throttling_rate_limit=self.settings.api_rate_limit,
                throttling_burst_limit=self.settings.api_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                tracing_enabled=True,
                metrics_enabled=True,
            ),
        )
        proxy = apigw.LambdaIntegration(runtime.functions["api"], proxy=True)
        api.root.add_method("ANY", proxy)
        api.root.add_resource("{proxy+}").add_method("ANY", proxy)
        for channel, path in WEBHOOK_ROUTES.items():
            function = runtime.functions.get(BY_NAME[channel].name)
            if function is None:
                continue
            resource = api.root.resource_for_path(path)
            integration = apigw.LambdaIntegration(function, proxy=True)
            for method in ("GET", "POST"):
                resource.add_method(method, integration)
        _common.suppress(
            api,
            {
                "AwsSolutions-APIG2": "Bodies are validated by the app (pydantic models, "
                "413 above ASTROMESH_MAX_BODY_BYTES); a proxy integration has no models here.",
                "AwsSolutions-APIG3": "WAF is an account-level choice (a web ACL costs per "
                "month); the stage is throttled and the app rate-limits per key.",
                "AwsSolutions-APIG4": _APP_AUTH,
                "AwsSolutions-COG4": _APP_AUTH,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]": "API Gateway's account-wide "
                "CloudWatch role uses the policy AWS provides for it.",
            },
        )
        return api

    # -- WebSocket ----------------------------------------------------------------------------

    def _websocket_api(self, runtime: RuntimeStack) -> None:
        def route(key: str) -> apigwv2.WebSocketRouteOptions:
            return apigwv2.WebSocketRouteOptions(
                integration=integrations.WebSocketLambdaIntegration(
                    f"{key.strip('$')}-integration", runtime.functions[WS_ROUTES[key]]
                )
            )

        self.websocket = apigwv2.WebSocketApi(
            self,
            "WebSocket",
            api_name=self.names.stack("ws"),
            description="Astromesh WebSocket: run agents, stream frames",
            connect_route_options=route("$connect"),
            disconnect_route_options=route("$disconnect"),
            default_route_options=route("$default"),
        )
        access_logs = _common.log_group(
            self, "WsAccessLogs", self.settings, f"/astromesh/{self.settings.name}/ws-access"
        )
        self.ws_stage = apigwv2.WebSocketStage(
            self,
            "WebSocketStage",
            web_socket_api=self.websocket,
            stage_name=self.settings.name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=self.settings.ws_rate_limit, burst_limit=self.settings.ws_burst_limit
            ),
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(access_logs),
                apigw.AccessLogFormat.custom(
                    '{"requestId":"$context.requestId","routeKey":"$context.routeKey",'
                    '"eventType":"$context.eventType","connectionId":"$context.connectionId",'
                    '"status":"$context.status","ip":"$context.identity.sourceIp",'
                    '"requestTime":"$context.requestTime",'
                    '"integrationError":"$context.integrationErrorMessage"}'
                ),
            ),
        )
        _common.suppress(self.websocket, {"AwsSolutions-APIG4": _APP_AUTH})
        ssm.StringParameter(
            self,
            "WsCallbackUrl",
            parameter_name=self.names.parameter(WS_CALLBACK_PARAMETER),
            string_value=self.ws_stage.callback_url,
            description="WebSocket Management API endpoint (post_to_connection)",
        )
        posters = [
            runtime.roles[name] for name, spec in BY_NAME.items()
            if spec.posts_frames and name in runtime.roles
        ]  # fmt: skip
        if posters:
            policy = iam.Policy(
                self,
                "ManageConnections",
                roles=posters,
                statements=[
                    iam.PolicyStatement(
                        actions=["execute-api:ManageConnections"],
                        resources=[
                            self.format_arn(
                                service="execute-api",
                                resource=self.websocket.api_id,
                                resource_name=f"{self.ws_stage.stage_name}/*/@connections/*",
                            )
                        ],
                    )
                ],
            )
            api_id = self.get_logical_id(self.websocket.node.default_child)
            connections = (
                "Resource::arn:<AWS::Partition>:execute-api:"
                f"{_common.arn_region(self)}:{_common.arn_account(self)}:"
                f"<{api_id}>/{self.settings.name}/*/@connections/*"
            )
            _common.suppress(
                policy,
                {
                    f"AwsSolutions-IAM5[{connections}]": "One stage's @connections/{id} (POST "
                    "a frame, GET / DELETE a connection): connection ids exist only at run time."
                },
            )

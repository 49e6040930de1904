"""The stacks around the functions: synth + cdk-nag, state machines, APIs, data, alarms, GPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from infra.app import check
from infra.config import Names
from infra.functions import FUNCTIONS, WS_ROUTES
from infra.stacks.orchestration import SYNC_RULE, WORKFLOWS

from astromesh.config import load_path
from astromesh.executors.stepfunctions import build_definition
from astromesh.telemetry.metrics import EmfMetrics
from astromesh.workflows.stepfunctions.definition import WAIT_FOR_TOKEN, build_workflow_definition
from infra import environment as env
from infra import metrics

pytestmark = pytest.mark.infra

EXAMPLES = Path(__file__).resolve().parents[2] / "infra" / "examples"


def _one(resources: dict[str, Any]) -> dict[str, Any]:
    assert len(resources) == 1, list(resources)
    return next(iter(resources.values()))


def _logical(stack: cdk.Stack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


# -- the app -----------------------------------------------------------------------------------


def test_app_synthesizes_offline_with_every_stack(dev, prod):
    assert set(dev.templates) == {"network", "data", "runtime", "orchestration", "api",
                                  "observability"}  # fmt: skip
    assert set(prod.templates) == set(dev.templates) | {"model_serving"}
    assert prod.stacks.all()[0].stack_name == "astromesh-prod-network"


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(tmp_path):
    """The app's synth passing means no finding is left: the same check fails this one."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "nag-control")
    s3.Bucket(stack, "NoLogs")  # AwsSolutions-S1/S10: no access logs, no SSL enforcement
    check(app)
    with pytest.raises(RuntimeError, match="AwsSolutions-S1"):
        app.synth()


# -- Step Functions ----------------------------------------------------------------------------


def test_state_machines_deploy_the_runtimes_definition(synthesized):
    settings = synthesized.stacks.settings
    machines = synthesized.resources("orchestration", "AWS::StepFunctions::StateMachine")
    names = Names(settings.name)
    by_type = {
        m["Properties"]["StateMachineType"]: m["Properties"]
        for m in machines.values()
        if m["Properties"]["StateMachineName"] != names.state_machine(WORKFLOWS)
    }
    assert set(by_type) == {"EXPRESS", "STANDARD"}
    expected = build_definition(max_concurrency=settings.sfn_max_concurrency).asl
    runtime = synthesized.stacks.runtime
    for kind, props in by_type.items():
        assert json.loads(props["DefinitionString"]) == expected
        substitutions = props["DefinitionSubstitutions"]
        assert set(substitutions) == {"OrchestrationStepFunctionArn", "ToolExecutorFunctionArn"}
        assert _logical(runtime, runtime.functions["orchestration_step"]) in json.dumps(
            substitutions["OrchestrationStepFunctionArn"]
        )
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["StateMachineName"] == Names(settings.name).state_machine(kind.lower())


def _policy_statements(synthesized, stack: str, role: Any) -> list[dict[str, Any]]:
    owner = getattr(synthesized.stacks, stack)
    return [
        s
        for p in synthesized.resources(stack, "AWS::IAM::Policy").values()
        if {"Ref": _logical(owner, role)} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_one_standard_workflow_machine_interprets_every_workflow(synthesized):
    settings = synthesized.stacks.settings
    names = Names(settings.name)
    orchestration = synthesized.stacks.orchestration
    machine = orchestration.machines[WORKFLOWS]
    props = synthesized.resources("orchestration", "AWS::StepFunctions::StateMachine")[
        _logical(orchestration, machine)
    ]["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["StateMachineName"] == names.state_machine(WORKFLOWS)
    definition = json.loads(props["DefinitionString"])
    expected = build_workflow_definition(max_concurrency=settings.sfn_max_concurrency).asl
    assert definition == expected
    assert WAIT_FOR_TOKEN in props["DefinitionString"]  # approvals wait on a task token
    assert ".waitForTaskToken" in WAIT_FOR_TOKEN
    substitutions = props["DefinitionSubstitutions"]
    runtime = synthesized.stacks.runtime
    assert _logical(runtime, runtime.functions["workflow_step"]) in json.dumps(
        substitutions["WorkflowStepFunctionArn"]
    )
    assert _logical(orchestration, orchestration.machines["standard"]) in json.dumps(
        substitutions["AgentStateMachineArn"]
    )
    assert props["LoggingConfiguration"]["Level"] == "ALL"


def test_the_workflow_machine_role_runs_steps_tools_and_child_agent_runs_only(synthesized):
    names = Names(synthesized.stacks.settings.name)
    orchestration = synthesized.stacks.orchestration
    statements = _policy_statements(
        synthesized, "orchestration", orchestration.machines[WORKFLOWS].role
    )
    by_action = {a: s for s in statements for a in _actions(s)}
    invoked = json.dumps(by_action["lambda:InvokeFunction"]["Resource"])
    runtime = synthesized.stacks.runtime
    for name in ("workflow_step", "tool_executor"):
        assert _logical(runtime, runtime.functions[name]) in invoked
    assert _logical(runtime, runtime.functions["orchestration_step"]) not in invoked
    started = json.dumps(by_action["states:StartExecution"]["Resource"])
    assert _logical(orchestration, orchestration.machines["standard"]) in started
    children = json.dumps(by_action["states:DescribeExecution"]["Resource"])
    assert f"execution:{names.state_machine('standard')}:*" in children
    assert "states:StopExecution" in by_action
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        assert SYNC_RULE in json.dumps(by_action[action]["Resource"])
    assert not [a for a in by_action if a.startswith("states:SendTask")]


def test_only_the_api_function_answers_approvals(synthesized):
    names = Names(synthesized.stacks.settings.name)
    runtime = synthesized.stacks.runtime
    holders = set()
    for name, role in runtime.roles.items():
        for statement in _policy_statements(synthesized, "runtime", role):
            actions = set(_actions(statement))
            if actions & {"states:SendTaskSuccess", "states:SendTaskFailure"}:
                assert actions == {"states:SendTaskSuccess", "states:SendTaskFailure"}
                holders.add(name)
            if "states:StartExecution" in actions and name == "api":
                assert any(
                    names.state_machine(kind) in json.dumps(statement["Resource"])
                    for kind in ("standard", WORKFLOWS)
                )
    assert holders == {"api"}
    for stack in ("orchestration", "api", "observability"):
        for policy in synthesized.resources(stack, "AWS::IAM::Policy").values():
            assert "states:SendTaskSuccess" not in json.dumps(policy)
    api = next(
        f["Properties"] for f in synthesized.resources("runtime", "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == names.function("api")
    )  # fmt: skip
    workflow_arn = api["Environment"]["Variables"][env.SFN_WORKFLOW_ARN_ENV]
    assert f"stateMachine:{names.state_machine(WORKFLOWS)}" in json.dumps(workflow_arn)


def test_functions_get_the_machines_arns_by_name(synthesized):
    names = Names(synthesized.stacks.settings.name)
    api = next(
        f["Properties"] for f in synthesized.resources("runtime", "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == names.function("api")
    )  # fmt: skip
    variables = api["Environment"]["Variables"]
    assert f"stateMachine:{names.state_machine('express')}" in json.dumps(
        variables[env.SFN_EXPRESS_ARN_ENV]
    )
    assert f"stateMachine:{names.state_machine('standard')}" in json.dumps(
        variables[env.SFN_STANDARD_ARN_ENV]
    )
    assert "Fn::ImportValue" not in json.dumps(variables[env.SFN_EXPRESS_ARN_ENV])


def test_state_machine_role_invokes_only_the_two_functions(synthesized):
    orchestration = synthesized.stacks.orchestration
    role = orchestration.machines["express"].role
    statements = [
        s
        for p in synthesized.resources("orchestration", "AWS::IAM::Policy").values()
        if {"Ref": _logical(orchestration, role)} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    invoke = [s for s in statements if s["Action"] == "lambda:InvokeFunction"]
    assert len(invoke) == 1 and len(invoke[0]["Resource"]) == 2
    assert all(":*" not in json.dumps(r) for r in invoke[0]["Resource"])
    for statement in statements:
        if statement["Resource"] == "*":
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert all(a.startswith(("logs:", "xray:")) for a in actions), actions


# -- ingress -----------------------------------------------------------------------------------


def test_websocket_routes_and_frame_posting(synthesized):
    runtime = synthesized.stacks.runtime
    if not all(name in runtime.functions for name in WS_ROUTES.values()):
        pytest.skip("the WebSocket functions are not written yet")
    routes = synthesized.resources("api", "AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == set(WS_ROUTES)
    integrations = synthesized.resources("api", "AWS::ApiGatewayV2::Integration")
    uris = json.dumps([i["Properties"]["IntegrationUri"] for i in integrations.values()])
    for name in set(WS_ROUTES.values()):
        assert _logical(runtime, runtime.functions[name]) in uris
    stage = _one(synthesized.resources("api", "AWS::ApiGatewayV2::Stage"))["Properties"]
    assert stage["StageName"] == synthesized.stacks.settings.name
    assert (
        stage["DefaultRouteSettings"]["ThrottlingRateLimit"]
        == synthesized.stacks.settings.ws_rate_limit
    )
    assert "DestinationArn" in stage["AccessLogSettings"]
    parameters = synthesized.resources("api", "AWS::SSM::Parameter")
    assert any(
        p["Properties"]["Name"].endswith("/websocket/callback-url") for p in parameters.values()
    )
    policy = _one(
        {
            k: v
            for k, v in synthesized.resources("api", "AWS::IAM::Policy").items()
            if "ManageConnections" in k
        }
    )["Properties"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:ManageConnections"
    assert f"/{synthesized.stacks.settings.name}/*/@connections/*" in json.dumps(
        statement["Resource"]
    )
    posters = [s.name for s in FUNCTIONS if s.posts_frames]
    assert len(policy["Roles"]) == len(posters)
    for name, role in zip(posters, policy["Roles"], strict=True):
        assert _logical(runtime, runtime.roles[name]) in json.dumps(role)


def test_rest_api_proxies_to_api_and_webhooks_to_their_functions(synthesized):
    runtime = synthesized.stacks.runtime
    methods = synthesized.resources("api", "AWS::ApiGateway::Method")
    uris = [
        (m["Properties"]["HttpMethod"], json.dumps(m["Properties"]["Integration"]["Uri"]))
        for m in methods.values()
    ]
    api_fn = _logical(runtime, runtime.functions["api"])
    assert (
        sum(1 for method, uri in uris if method == "ANY" and api_fn in uri) == 2
    )  # / and {proxy+}
    for channel in ("whatsapp", "telegram"):
        if channel in runtime.functions:
            fn = _logical(runtime, runtime.functions[channel])
            assert {m for m, uri in uris if fn in uri} == {"GET", "POST"}
    stage = _one(synthesized.resources("api", "AWS::ApiGateway::Stage"))["Properties"]
    settings = synthesized.stacks.settings
    (throttle,) = stage["MethodSettings"]
    assert throttle["ThrottlingRateLimit"] == settings.api_rate_limit
    assert throttle["ThrottlingBurstLimit"] == settings.api_burst_limit
    assert stage["TracingEnabled"] is True
    assert "DestinationArn" in stage["AccessLogSetting"]
    assert settings.max_body_bytes <= 10 * 1024 * 1024  # API Gateway's own limit


def test_the_urls_a_user_needs_after_deploy_are_named_outputs(synthesized):
    """README's deploy section tells users to read these; each points at the right thing."""
    api = synthesized.stacks.api
    outputs = synthesized.templates["api"]["Outputs"]
    rest_id, ws_id = _logical(api, api.rest), _logical(api, api.websocket)
    rest_url = json.dumps(outputs["RestApiUrl"]["Value"])
    assert rest_id in rest_url and rest_url.startswith('{"Fn::Join": ["", ["https://"')
    for channel, output in (("whatsapp", "WhatsappWebhookUrl"), ("telegram", "TelegramWebhookUrl")):
        if channel in synthesized.stacks.runtime.functions:
            value = json.dumps(outputs[output]["Value"])
            assert rest_id in value and value.endswith(f'"/v1/channels/{channel}/webhook"]]}}')
    ws_url = json.dumps(outputs["WebSocketUrl"]["Value"])
    assert ws_url.startswith('{"Fn::Join": ["", ["wss://"') and ws_id in ws_url
    bucket = synthesized.templates["data"]["Outputs"]["DocumentsBucketName"]["Value"]
    documents = _logical(synthesized.stacks.data, synthesized.stacks.data.documents)
    assert bucket == {"Ref": documents}


# -- data --------------------------------------------------------------------------------------


def test_redis_is_encrypted_with_auth_in_isolated_subnets(synthesized):
    props = _one(synthesized.resources("data", "AWS::ElastiCache::ReplicationGroup"))["Properties"]
    assert props["Engine"] == "valkey"
    assert props["TransitEncryptionEnabled"] is True and props["AtRestEncryptionEnabled"] is True
    assert "resolve:secretsmanager" in json.dumps(props["AuthToken"])
    assert props["NumCacheClusters"] == 1 + synthesized.stacks.settings.redis_replicas


def test_postgres_16_encrypted_with_the_migration_custom_resource(synthesized):
    props = _one(synthesized.resources("data", "AWS::RDS::DBInstance"))["Properties"]
    assert props["Engine"] == "postgres" and props["EngineVersion"].startswith("16.")
    assert props["StorageEncrypted"] is True
    assert props["MultiAZ"] is synthesized.stacks.settings.db_multi_az
    schema = _one(synthesized.resources("data", "Custom::AstromeshSchema"))
    assert schema["Properties"]["Extensions"] == ["vector"]
    assert schema["DependsOn"], "the schema waits for the database"
    migrations = [
        f for f in synthesized.resources("data", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.on_event"
    ]  # fmt: skip
    assert len(migrations) == 1
    assert Path(migrations[0]["Metadata"]["aws:asset:path"]).name == "migrations"


def test_documents_bucket_notifies_ingestion(synthesized):
    runtime = synthesized.stacks.runtime
    notifications = _one(synthesized.resources("runtime", "Custom::S3BucketNotifications"))
    configs = notifications["Properties"]["NotificationConfiguration"][
        "LambdaFunctionConfigurations"
    ]
    assert {c["Events"][0] for c in configs} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    ingestion = _logical(runtime, runtime.functions["ingestion"])
    assert all(c["LambdaFunctionArn"] == {"Fn::GetAtt": [ingestion, "Arn"]} for c in configs)
    bucket = next(
        b["Properties"] for b in synthesized.resources("data", "AWS::S3::Bucket").values()
        if "documents" in json.dumps(b["Properties"].get("BucketName", ""))
    )  # fmt: skip
    assert bucket["BucketName"] == notifications["Properties"]["BucketName"]


def test_encryption_at_rest_everywhere(synthesized):
    for stack, template in synthesized.templates.items():
        for logical, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::S3::Bucket":
                assert props["BucketEncryption"], (stack, logical)
            if resource["Type"] == "AWS::SNS::Topic":
                assert "KmsMasterKeyId" in props, (stack, logical)
    secrets = synthesized.resources("data", "AWS::SecretsManager::Secret")
    names = {json.dumps(s["Properties"].get("Name")) for s in secrets.values()}
    for part in ("postgres", "redis-auth", "provider-keys", "whatsapp", "telegram", "gpu-api-key"):
        assert any(part in n for n in names), part


def test_vpc_endpoints(synthesized):
    endpoints = synthesized.resources("network", "AWS::EC2::VPCEndpoint")
    services = json.dumps([e["Properties"]["ServiceName"] for e in endpoints.values()])
    for service in (".s3", ".secretsmanager", ".ssm", ".states", ".sync-states"):
        assert service in services, service
    assert "execute-api" not in services


# -- observability -----------------------------------------------------------------------------


def test_alarms_cover_functions_machines_runs_and_cost(synthesized):
    alarms = synthesized.stacks.observability.alarms
    for name in synthesized.stacks.runtime.functions:
        assert {f"{name}-errors", f"{name}-throttles"} <= set(alarms)
    expected = {
        "express-executions-failed", "standard-executions-failed", "rest-5xx",
        "circuit-opened", "runs-failed", "cost-per-day",
        "workflows-executions-failed", "workflows-executions-timed-out",
    }  # fmt: skip
    assert expected <= set(alarms)
    templates = synthesized.resources("observability", "AWS::CloudWatch::Alarm").values()
    by_metric = {a["Properties"].get("MetricName"): a["Properties"] for a in templates}
    cost = by_metric[metrics.RUN_COST.name]
    assert cost["Period"] == 86400 and cost["Namespace"] == metrics.NAMESPACE
    assert cost["Threshold"] == synthesized.stacks.settings.daily_cost_alarm_usd
    assert all(a["Properties"]["AlarmActions"] for a in templates)
    assert all(a["Properties"]["TreatMissingData"] == "notBreaching" for a in templates)


def test_the_runtime_metric_alarms_watch_what_the_runtime_writes(synthesized):
    """Each alarm on a runtime metric matches the EMF document the functions write: same
    namespace, name and dimension set, the dimension's value being the functions' stage."""
    stage = synthesized.stacks.settings.name
    functions = synthesized.resources("runtime", "AWS::Lambda::Function").values()
    variables = [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions]
    running_agents = [v for v in variables if env.AGENTS_DIR_ENV in v]
    assert len(running_agents) == len(synthesized.stacks.runtime.functions)
    assert {v[env.STAGE_ENV] for v in running_agents} == {stage}
    alarms = synthesized.resources("observability", "AWS::CloudWatch::Alarm").values()
    watched = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName")): a["Properties"]
        for a in alarms
    }
    for metric in metrics.ALARMED_METRICS:
        document = EmfMetrics(stage).document(metric, 1, {})
        [directive] = document["_aws"]["CloudWatchMetrics"]
        alarm = watched[(directive["Namespace"], metric.name)]
        assert [[d["Name"] for d in alarm["Dimensions"]]] == directive["Dimensions"]
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            name: document[name] for name in directive["Dimensions"][0]
        }
        assert alarm["Statistic"] == metric.statistic


# -- model serving -----------------------------------------------------------------------------


def test_gpu_model_server_with_autoscaling_and_published_endpoint(prod):
    task = _one(prod.resources("model_serving", "AWS::ECS::TaskDefinition"))["Properties"]
    (container,) = task["ContainerDefinitions"]
    assert container["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    assert container["Image"] == prod.stacks.settings.gpu.image_uri
    assert [s["Name"] for s in container["Secrets"]] == ["VLLM_API_KEY"]
    target = _one(prod.resources("model_serving", "AWS::ApplicationAutoScaling::ScalableTarget"))
    assert target["Properties"]["MaxCapacity"] == prod.stacks.settings.gpu.max_tasks
    policy = _one(prod.resources("model_serving", "AWS::ApplicationAutoScaling::ScalingPolicy"))
    assert "ALBRequestCountPerTarget" in json.dumps(policy)
    lb = _one(prod.resources("model_serving", "AWS::ElasticLoadBalancingV2::LoadBalancer"))
    assert lb["Properties"]["Scheme"] == "internal"
    parameter = _one(prod.resources("model_serving", "AWS::SSM::Parameter"))["Properties"]
    assert parameter["Name"] == "/astromesh/prod/model-serving/endpoint"
    assert parameter["Value"] == "https://models.internal.example.com/v1"  # conftest's name


def test_dev_has_no_gpu_endpoint(dev):
    assert dev.stacks.model_serving is None
    variables = json.dumps(dev.resources("runtime", "AWS::Lambda::Function"))
    assert env.GPU_ENDPOINT_ENV not in variables


def test_gpu_provider_example_is_a_valid_provider_config():
    result = load_path(
        EXAMPLES / "providers.gpu.yaml",
        env={env.GPU_ENDPOINT_ENV: "https://models.internal.example.com/v1"},
    )
    assert not result.errors, result.errors
    entry = result.providers["gpu"]
    assert entry.endpoint == "https://models.internal.example.com/v1"
    assert entry.api_key_env == env.GPU_API_KEY_ENV

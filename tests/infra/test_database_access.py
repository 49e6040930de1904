"""Who may reach PostgreSQL, as what: RDS Proxy with IAM auth, the application user, rotation.

The functions hold no database secret: they reach RDS Proxy (TLS, IAM tokens) as
``astromesh_app`` and only that; the master secret is the migrations function's alone, the
application user's secret the proxy's; both rotate; the instance admits the proxy, the
migrations function and the two rotation functions, nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from infra.functions import FUNCTIONS
from infra.stacks import _common

from astromesh.stores.postgres_connect import PostgresConnector
from infra import environment as env

pytestmark = pytest.mark.infra

PROXY_ARN = "arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-0123456789abcdef0"
PROXY_ENDPOINT = "astromesh-x-postgres.proxy-c0ffee.eu-west-1.rds.amazonaws.com"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012"}


def _logical(stack: Any, construct: Any) -> str:
    return str(stack.get_logical_id(construct.node.default_child))


def _actions(statement: Mapping[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _statements(synth: Any) -> Iterator[tuple[str, list[Any], Mapping[str, Any]]]:
    """(stack, the policy's roles, statement) for every inline policy of every stack."""
    for stack, template in synth.templates.items():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::IAM::Policy":
                for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                    yield stack, resource["Properties"]["Roles"], statement


def _variables(function: Mapping[str, Any]) -> dict[str, Any]:
    return dict(function["Properties"].get("Environment", {}).get("Variables", {}))


def _evaluate(value: Any, imports: Mapping[str, str]) -> Any:
    """Resolve the intrinsics the templates use here, with sample pseudo-parameters and
    ``imports`` (export-name fragment -> value) standing in for other stacks' values."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in PSEUDO:
            return PSEUDO[arg]
        if key == "Fn::ImportValue":
            return next(v for fragment, v in imports.items() if fragment in arg)
        if key == "Fn::Join":
            return arg[0].join(str(_evaluate(part, imports)) for part in arg[1])
        if key == "Fn::Split":
            return str(_evaluate(arg[1], imports)).split(arg[0])
        if key == "Fn::Select":
            return _evaluate(arg[1], imports)[int(arg[0])]
    return value


def _proxy_imports(synth: Any) -> dict[str, str]:
    data = synth.stacks.data
    proxy = _logical(data, data.proxy)
    return {f"{proxy}DBProxyArn": PROXY_ARN, f"{proxy}Endpoint": PROXY_ENDPOINT}


# -- the proxy -----------------------------------------------------------------------------------


def test_the_proxy_requires_tls_and_iam_and_logs_in_with_the_app_secret(synthesized):
    data = synthesized.stacks.data
    (proxy,) = synthesized.resources("data", "AWS::RDS::DBProxy").values()
    props = proxy["Properties"]
    assert props["RequireTLS"] is True and props["EngineFamily"] == "POSTGRESQL"
    assert props["Auth"] == [
        {
            "AuthScheme": "SECRETS",
            "IAMAuth": "REQUIRED",
            "SecretArn": {"Ref": data.get_logical_id(data.app_secret.node.default_child)},
        }
    ]
    proxy_sg = data.proxy.connections.security_groups
    assert props["VpcSecurityGroupIds"] == [
        {"Fn::GetAtt": [_logical(data, sg), "GroupId"]} for sg in proxy_sg
    ]
    (target,) = synthesized.resources("data", "AWS::RDS::DBProxyTargetGroup").values()
    assert target["Properties"]["DBInstanceIdentifiers"] == [{"Ref": _logical(data, data.database)}]
    assert "Tags" not in target["Properties"], "CloudFormation rejects Tags on a target group"


def test_the_app_secret_is_for_astromesh_app_attached_to_the_instance(synthesized):
    secrets = synthesized.resources("data", "AWS::SecretsManager::Secret").values()
    (app,) = [s for s in secrets if "postgres-app" in json.dumps(s["Properties"].get("Name"))]
    template = json.dumps(app["Properties"]["GenerateSecretString"]["SecretStringTemplate"])
    assert f'\\"username\\":\\"{_common.POSTGRES_APP_USER}\\"' in template
    attachments = synthesized.resources("data", "AWS::SecretsManager::SecretTargetAttachment")
    data = synthesized.stacks.data
    assert {a["Properties"]["TargetId"]["Ref"] for a in attachments.values()} == {
        _logical(data, data.database)
    }
    assert len(attachments) == 2, "the master's and the application user's"


# -- the functions: a DSN without secret, rds-db:connect on the proxy as astromesh_app -----------


def test_functions_reach_the_proxy_with_iam_tokens(synthesized):
    imports = _proxy_imports(synthesized)
    functions = synthesized.resources("runtime", "AWS::Lambda::Function").values()
    with_dsn = [f for f in functions if env.POSTGRES_DSN_ENV in _variables(f)]
    assert len(with_dsn) == sum(1 for spec in FUNCTIONS if spec.exists)
    for function in with_dsn:
        variables = _variables(function)
        dsn = _evaluate(variables[env.POSTGRES_DSN_ENV], imports)
        assert dsn == (
            f"postgresql://astromesh_app@{PROXY_ENDPOINT}:5432/astromesh?sslmode=verify-full"
        )
        assert variables[env.POSTGRES_IAM_AUTH_ENV] == "true"
        assert variables[env.POSTGRES_PREPARE_THRESHOLD_ENV] == "none"
        # What the runtime makes of the deployed settings (no AWS call: the token is lazy).
        settings = {k: v for k, v in variables.items() if isinstance(v, str)}
        connector = PostgresConnector.from_env(dsn, {**settings, "AWS_REGION": "eu-west-1"})
        assert connector.iam_auth and connector.user == "astromesh_app"
        assert connector.host == PROXY_ENDPOINT and "sslrootcert=" in connector.conninfo
        assert connector.prepare_threshold is None


def test_function_roles_may_connect_as_astromesh_app_on_the_proxy_only(synthesized):
    imports = _proxy_imports(synthesized)
    runtime = synthesized.stacks.runtime
    expected = "arn:aws:rds-db:eu-west-1:123456789012:dbuser:prx-0123456789abcdef0/astromesh_app"
    connecting: dict[str, list[Any]] = {}
    for stack, roles, statement in _statements(synthesized):
        if any(a.startswith("rds-db:") for a in _actions(statement)):
            assert stack == "runtime", "only the functions connect with IAM tokens"
            assert _actions(statement) == ["rds-db:connect"]
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            assert [_evaluate(r, imports) for r in resources] == [expected]
            for role in roles:
                connecting.setdefault(role["Ref"], []).append(statement)
    assert set(connecting) == {_logical(runtime, role) for role in runtime.roles.values()}
    assert all(len(statements) == 1 for statements in connecting.values())


def test_no_function_reads_a_database_secret(synthesized):
    data = synthesized.stacks.data
    master = data.get_logical_id(data.db_secret.node.default_child)
    app = data.get_logical_id(data.app_secret.node.default_child)
    migrations_role = {"Ref": _logical(data, data.node.find_child("MigrationsRole"))}
    proxy_role = {"Ref": _logical(data, data.proxy.node.find_child("IAMRole"))}
    readers: dict[str, list[Any]] = {master: [], app: []}
    for stack, roles, statement in _statements(synthesized):
        if "secretsmanager:GetSecretValue" not in _actions(statement):
            continue
        text = json.dumps(statement["Resource"])
        for secret, found in readers.items():
            if secret in text:  # a Ref in the data stack, an export name elsewhere
                assert stack == "data", (stack, secret)
                found.extend(roles)
    assert readers[master] == [migrations_role], "the master secret: migrations only"
    assert sorted(map(json.dumps, readers[app])) == sorted(
        map(json.dumps, [migrations_role, proxy_role])
    ), "the application user's secret: the proxy (and migrations, to create the role)"
    for function in synthesized.resources("runtime", "AWS::Lambda::Function").values():
        resolve = json.dumps(_variables(function).get(env.RESOLVE_ENV))
        assert master not in resolve and app not in resolve


def test_migrations_reads_its_secrets_itself_in_its_own_security_group(synthesized):
    data = synthesized.stacks.data
    (function,) = [
        f["Properties"] for f in synthesized.resources("data", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.on_event"
    ]  # fmt: skip
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in json.dumps(function.get("Environment", {}))
    migrations_sg = data.node.find_child("MigrationsSg")
    assert function["VpcConfig"]["SecurityGroupIds"] == [
        {"Fn::GetAtt": [_logical(data, migrations_sg), "GroupId"]}
    ]
    (schema,) = synthesized.resources("data", "Custom::AstromeshSchema").values()
    props = schema["Properties"]
    assert props["MasterSecretArn"] == {
        "Ref": data.get_logical_id(data.db_secret.node.default_child)
    }
    assert props["AppSecretArn"] == {"Ref": data.get_logical_id(data.app_secret.node.default_child)}
    assert props["Database"] == _common.POSTGRES_DB
    db_sg = _logical(data, data.database.connections.security_groups[0])
    assert _logical(data, data.database) in schema["DependsOn"]
    assert db_sg in schema["DependsOn"], "its ingress rule exists before it connects"


# -- rotation ------------------------------------------------------------------------------------


def test_both_database_secrets_rotate_after_the_schema(synthesized):
    data = synthesized.stacks.data
    schedules = synthesized.resources("data", "AWS::SecretsManager::RotationSchedule").values()
    by_secret = {s["Properties"]["SecretId"]["Ref"]: s for s in schedules}
    for secret in (data.db_secret, data.app_secret):
        schedule = by_secret[data.get_logical_id(secret.node.default_child)]
        assert schedule["Properties"]["RotationRules"]["ScheduleExpression"] == "rate(30 days)"
        assert "Schema" in schedule["DependsOn"], "the role exists before its first rotation"
    apps = synthesized.resources("data", "AWS::Serverless::Application").values()
    assert len(apps) == 2
    network = synthesized.stacks.network
    data_subnets = {_logical(network, subnet) for subnet in network.vpc.isolated_subnets}
    for application in apps:
        subnets = json.dumps(application["Properties"]["Parameters"]["vpcSubnetIds"])
        assert all(subnet in subnets for subnet in data_subnets)


def test_rotation_reaches_secrets_manager_through_the_endpoint(synthesized):
    endpoints = synthesized.resources("network", "AWS::EC2::VPCEndpoint")
    (endpoint,) = [
        e["Properties"] for e in endpoints.values()
        if "secretsmanager" in json.dumps(e["Properties"]["ServiceName"])
    ]  # fmt: skip
    assert endpoint["PrivateDnsEnabled"] is True, "the rotation functions use the default URL"
    groups = synthesized.resources("network", "AWS::EC2::SecurityGroup")
    (sg_ref,) = endpoint["SecurityGroupIds"]
    ingress = groups[sg_ref["Fn::GetAtt"][0]]["Properties"]["SecurityGroupIngress"]
    vpc = _logical(synthesized.stacks.network, synthesized.stacks.network.vpc)
    assert {(r["FromPort"], json.dumps(r["CidrIp"])) for r in ingress} == {
        (443, json.dumps({"Fn::GetAtt": [vpc, "CidrBlock"]}))
    }


def test_no_database_secret_acknowledges_missing_rotation(synthesized):
    data = synthesized.stacks.data
    for construct in (data.database, data.db_secret, data.app_secret):
        for child in construct.node.find_all():
            for entry in child.node.metadata:
                if entry.type == "aws:cdk:acknowledged-rules":
                    assert not any("AwsSolutions-SMG4" in rule for rule in entry.data), child


# -- the network path --------------------------------------------------------------------------


def test_the_instance_admits_the_proxy_migrations_and_rotation_only(synthesized):
    data = synthesized.stacks.data
    db_sg = _logical(data, data.database.connections.security_groups[0])
    group = synthesized.resources("data", "AWS::EC2::SecurityGroup")[db_sg]["Properties"]
    assert "SecurityGroupIngress" not in group, "no inline (CIDR) rules"
    sources = {
        r["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        for r in synthesized.resources("data", "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [db_sg, "GroupId"]}
    }
    rotation_sgs = {
        a["Properties"]["Parameters"]["vpcSecurityGroupIds"]["Fn::GetAtt"][0]
        for a in synthesized.resources("data", "AWS::Serverless::Application").values()
    }
    proxy_sg = _logical(data, data.proxy.connections.security_groups[0])
    migrations_sg = _logical(data, data.node.find_child("MigrationsSg"))
    assert sources == {proxy_sg, migrations_sg, *rotation_sgs}
    assert len(rotation_sgs) == 2


def test_the_functions_reach_only_the_proxy(synthesized):
    data, network = synthesized.stacks.data, synthesized.stacks.network
    functions_sg = _logical(network, network.functions_sg)
    proxy_sg = _logical(data, data.proxy.connections.security_groups[0])
    admitting = {
        (r["Properties"]["GroupId"]["Fn::GetAtt"][0], r["Properties"]["FromPort"])
        for r in synthesized.resources("data", "AWS::EC2::SecurityGroupIngress").values()
        if functions_sg in json.dumps(r["Properties"].get("SourceSecurityGroupId"))
    }
    redis_sg = next(
        k for k, g in synthesized.resources("data", "AWS::EC2::SecurityGroup").items()
        if g["Properties"]["GroupDescription"].startswith("Valkey")
    )  # fmt: skip
    assert admitting == {(proxy_sg, 5432), (redis_sg, 6379)}
    proxy_group = synthesized.resources("data", "AWS::EC2::SecurityGroup")[proxy_sg]
    assert "SecurityGroupIngress" not in proxy_group["Properties"]

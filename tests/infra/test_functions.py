"""Every function of the table: settings, layers, environment, handler file, least privilege."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from infra.bundling import ML_REQUIREMENTS
from infra.config import Names
from infra.functions import (
    BY_NAME,
    FUNCTIONS,
    FUNCTIONS_DIR,
    FunctionSpec,
    agents_need_faiss,
    agents_need_mcp,
    agents_need_ml,
    carries_faiss,
    carries_mcp,
    carries_ml,
)
from tests.support.agents import write_agent

from astromesh.config import load_path
from infra import environment as env

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
MISSING = [spec.name for spec in FUNCTIONS if not spec.exists]

TASK_TOKEN_ACTIONS = {"states:SendTaskSuccess", "states:SendTaskFailure"}
"""A callback task's token cannot be scoped by IAM: '*' for the API (approve / reject) only."""

STAR_ACTIONS = {
    # Lambda in a VPC (AWSLambdaVPCAccessExecutionRole's actions).
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    # Active tracing.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
"""The only actions a function's role may grant on '*': AWS has no resource-level
permissions for them."""


def _functions(synth: Any) -> dict[str, dict[str, Any]]:
    """Template function resources keyed by the table's names (via FunctionName)."""
    by_physical = {Names(synth.stacks.settings.name).function(s.name): s.name for s in FUNCTIONS}
    return {
        by_physical[r["Properties"]["FunctionName"]]: r
        for r in synth.resources("runtime", "AWS::Lambda::Function").values()
        if r["Properties"].get("FunctionName") in by_physical
    }


def _logical(synth: Any, stack: str, construct: Any) -> str:
    stack_obj = getattr(synth.stacks, stack)
    return stack_obj.get_logical_id(construct.node.default_child)


def _statements(synth: Any, stack: str, role_logical: str) -> list[dict[str, Any]]:
    """Every statement of every inline policy attached to the role."""
    found: list[dict[str, Any]] = []
    for policy in synth.resources(stack, "AWS::IAM::Policy").values():
        roles = policy["Properties"].get("Roles", [])
        if {"Ref": role_logical} in roles:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[Any]:
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


# -- the table ---------------------------------------------------------------------------------


def test_every_function_folder_has_a_row():
    folders = {p.parent.name for p in FUNCTIONS_DIR.glob("*/handler.py")}
    assert folders <= set(BY_NAME), (
        f"functions without a row in infra/functions.py: {folders - set(BY_NAME)}"
    )


def test_the_table_is_complete_once_every_handler_exists():
    """The issue's full set; rows whose handler is still being written are reported here."""
    assert set(BY_NAME) == {
        "api", "ws_connect", "ws_message", "whatsapp", "telegram",
        "orchestration_step", "tool_executor", "workflow_step", "ingestion",
    }  # fmt: skip
    if MISSING:
        pytest.skip(f"handlers not written yet (not deployed): {', '.join(MISSING)}")


def test_exactly_the_written_functions_are_deployed(synthesized):
    assert set(_functions(synthesized)) == {s.name for s in FUNCTIONS if s.exists}


# -- each function -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_function_settings(synthesized, spec: FunctionSpec):
    if not spec.exists:
        pytest.skip(f"functions/{spec.name}/handler.py not written yet")
    props = _functions(synthesized)[spec.name]["Properties"]
    settings = synthesized.stacks.settings
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "handler.handler"
    assert props["MemorySize"] == spec.memory_mb
    assert props["Timeout"] == spec.timeout_s
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["VpcConfig"]["SubnetIds"], "every function runs in the VPC's app subnets"
    assert props.get("ReservedConcurrentExecutions") == settings.reserved_concurrency.get(spec.name)
    variables = props["Environment"]["Variables"]
    assert variables[env.AGENTS_DIR_ENV] == env.AGENTS_DIR
    assert variables[env.STATE_BACKEND_ENV] == settings.state_backend
    assert variables[env.STAGE_ENV] == settings.name
    assert variables["POWERTOOLS_SERVICE_NAME"] == spec.service
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == env.EXEC_WRAPPER
    assert (env.SFN_EXPRESS_ARN_ENV in variables) is spec.starts_runs
    assert (env.SFN_WORKFLOW_ARN_ENV in variables) is spec.runs_workflows
    assert (env.GPU_ENDPOINT_ENV in variables) is (spec.model_keys and settings.gpu is not None)
    if spec.name == "api":
        assert variables[env.AUTH_ENV] == "required"
        assert variables[env.MAX_BODY_ENV] == str(settings.max_body_bytes)
    # Channel secrets and the Redis URL (its password) come from the resolver, never the
    # config: declared empty there, for sam (test_sam_env.py), and filled at cold start.
    secret_values = {
        k: v for k, v in variables.items() if k.startswith(("WHATSAPP_", "TELEGRAM_")) and v
    }
    assert secret_values == {}, "channel secrets come from the resolver, never the config"
    assert variables.get(env.REDIS_URL_ENV, "") == ""  # the database's DSN: test_database_access


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_resolver_names_the_function_secrets(synthesized, spec: FunctionSpec):
    if not spec.exists:
        pytest.skip(f"functions/{spec.name}/handler.py not written yet")
    raw = _functions(synthesized)[spec.name]["Properties"]["Environment"]["Variables"][
        env.RESOLVE_ENV
    ]
    text = json.dumps(raw)  # a Fn::Join of JSON text and secret ARNs
    assert env.REDIS_URL_ENV in text and env.POSTGRES_DSN_ENV not in text  # IAM, no secret
    assert (env.WS_CALLBACK_URL_ENV in text) is spec.posts_frames
    assert (env.GPU_API_KEY_ENV in text) is (
        spec.model_keys and synthesized.stacks.settings.gpu is not None
    )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_handler_resolves_to_a_real_file(synthesized, spec: FunctionSpec):
    if not spec.exists:
        pytest.skip(f"functions/{spec.name}/handler.py not written yet")
    function = _functions(synthesized)[spec.name]
    source = Path(function["Metadata"]["aws:asset:path"])
    assert source.resolve() == spec.folder.resolve()
    module = ast.parse((source / "handler.py").read_text(encoding="utf-8"))
    names = {n.name for n in module.body if isinstance(n, ast.FunctionDef)}
    assert "handler" in names


def test_every_sample_event_folder_is_wired_to_a_deployed_function(synthesized):
    """events/<name>/ feeds functions/<name>/ (tests/functions invokes every sample)."""
    deployed = set(_functions(synthesized))
    for folder in (REPO / "events").iterdir():
        if folder.is_dir() and any(folder.glob("*.json")):
            assert folder.name in deployed, f"events/{folder.name} has no deployed function"


def test_only_rag_functions_carry_the_ml_layer(synthesized):
    """The repository's agents do not retrieve, so the functions running them stay light."""
    runtime = synthesized.stacks.runtime
    assert not agents_need_ml(runtime.agents)
    ml = {"Ref": _logical(synthesized, "runtime", runtime.ml_layer)}
    light = {"Ref": _logical(synthesized, "runtime", runtime.runtime_layer)}
    assert runtime.runtime_sources_layer is not None
    sources = {"Ref": _logical(synthesized, "runtime", runtime.runtime_sources_layer)}
    for name, function in _functions(synthesized).items():
        layers = function["Properties"]["Layers"]
        assert (ml in layers) is BY_NAME[name].ml, name
        # The runtime with bytecode where the size target has room for it, else without.
        assert layers[0] == (sources if BY_NAME[name].ml else light), name
        assert (light in layers) is not (sources in layers), name
    assert {"api", "ingestion"} == {s.name for s in FUNCTIONS if s.ml}
    assert ML_REQUIREMENTS.is_file()


@pytest.mark.parametrize(
    "retrieval",
    [
        {"tools": [{"name": "docs", "type": "rag", "pipeline": "kb"}]},
        {"memory": {"semantic": {"backend": "faiss"}}},
    ],
    ids=["rag-tool", "semantic-memory"],
)
def test_functions_running_agents_that_retrieve_carry_the_ml_layer(tmp_path, retrieval):
    """Embedding happens wherever an agent's steps run (prepare recalls, a rag tool call
    embeds its query), so those functions need the ml layer; ws_connect never does."""
    write_agent(tmp_path, "plain")
    assert not agents_need_ml(load_path(tmp_path))
    write_agent(tmp_path, "reader", **retrieval)
    agents = load_path(tmp_path)
    assert agents_need_ml(agents)
    carrying = {spec.name for spec in FUNCTIONS if carries_ml(spec, agents)}
    assert carrying == {
        "api", "ingestion", "ws_message", "whatsapp", "telegram", "orchestration_step",
        "tool_executor", "workflow_step",
    }  # fmt: skip


def test_the_repository_agents_need_neither_faiss_nor_mcp(synthesized):
    """In AWS the vector store is pgvector: no function carries FAISS (30 MB) or the MCP SDK
    (18 MB, cryptography included) unless a document of the deployment uses them."""
    runtime = synthesized.stacks.runtime
    assert not agents_need_faiss(runtime.agents) and not agents_need_mcp(runtime.agents)
    assert runtime.faiss_layer is None and runtime.mcp_layer is None


def test_only_faiss_documents_add_the_faiss_layer_beside_ml(tmp_path):
    write_agent(tmp_path, "reader", memory={"semantic": {"backend": "pgvector"}})
    agents = load_path(tmp_path)
    assert agents_need_ml(agents) and not agents_need_faiss(agents)
    write_agent(tmp_path, "local", memory={"semantic": {"backend": "faiss"}})
    agents = load_path(tmp_path)
    assert agents_need_faiss(agents)
    carrying = {spec.name for spec in FUNCTIONS if carries_faiss(spec, agents)}
    assert carrying == {spec.name for spec in FUNCTIONS if carries_ml(spec, agents)}
    assert "ws_connect" not in carrying


def test_only_functions_running_agents_with_mcp_tools_carry_the_mcp_layer(tmp_path):
    write_agent(tmp_path, "plain")
    assert not agents_need_mcp(load_path(tmp_path))
    tool = {"name": "files", "type": "mcp", "command": "mcp-server-files"}
    write_agent(tmp_path, "mcp_user", tools=[tool])
    agents = load_path(tmp_path)
    assert agents_need_mcp(agents)
    carrying = {spec.name for spec in FUNCTIONS if carries_mcp(spec, agents)}
    assert carrying == {
        "api", "ws_message", "whatsapp", "telegram", "orchestration_step", "tool_executor",
        "workflow_step",
    }  # fmt: skip


# -- least privilege ---------------------------------------------------------------------------


def _role_statements(synth: Any, name: str) -> list[dict[str, Any]]:
    role = synth.stacks.runtime.roles[name]
    return _statements(synth, "runtime", _logical(synth, "runtime", role))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_roles_are_least_privilege(synthesized, spec: FunctionSpec):
    if not spec.exists:
        pytest.skip(f"functions/{spec.name}/handler.py not written yet")
    statements = _role_statements(synthesized, spec.name)
    actions = {a for s in statements for a in _actions(s)}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            assert action != "*" and not action.endswith(":*"), action
        if "*" in _resources(statement):
            allowed = STAR_ACTIONS | (TASK_TOKEN_ACTIONS if spec.runs_workflows else set())
            assert set(_actions(statement)) <= allowed, statement
    assert STAR_ACTIONS & actions == STAR_ACTIONS  # VPC + tracing: needed, nothing more
    assert ({"states:StartExecution", "states:StartSyncExecution"} <= actions) is spec.starts_runs
    assert (actions >= TASK_TOKEN_ACTIONS) is spec.runs_workflows
    assert ("s3:GetObject" in actions) is spec.reads_documents
    assert ("lambda:InvokeFunction" in actions) is spec.invokes_itself
    assert ("ssm:GetParameter" in actions) is spec.posts_frames
    assert {a for a in actions if a.startswith("secretsmanager:")} == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    assert not any(a.startswith(("s3:Put", "s3:Delete", "iam:", "kms:")) for a in actions)


def test_starting_runs_is_scoped_to_the_named_machines(synthesized):
    names = Names(synthesized.stacks.settings.name)
    for name in (s.name for s in FUNCTIONS if s.starts_runs and s.exists):
        for statement in _role_statements(synthesized, name):
            if set(_actions(statement)) == TASK_TOKEN_ACTIONS:
                continue  # test_roles_are_least_privilege: the API's only, on '*'
            if any(a.startswith("states:") for a in _actions(statement)):
                text = json.dumps(statement["Resource"])
                kinds = (
                    ["express"]
                    if "states:StartSyncExecution" in _actions(statement)
                    else ["standard", "workflows"]
                )
                assert any(f"stateMachine:{names.state_machine(k)}" in text for k in kinds)


def test_invoking_itself_is_scoped_to_its_own_name(synthesized):
    names = Names(synthesized.stacks.settings.name)
    for spec in (s for s in FUNCTIONS if s.invokes_itself and s.exists):
        for statement in _role_statements(synthesized, spec.name):
            if "lambda:InvokeFunction" in _actions(statement):
                assert f"function:{names.function(spec.name)}" in json.dumps(statement["Resource"])
        function = synthesized.stacks.runtime.functions[spec.name]
        configs = synthesized.resources("runtime", "AWS::Lambda::EventInvokeConfig").values()
        ref = {"Ref": _logical(synthesized, "runtime", function)}
        mine = [c["Properties"] for c in configs if c["Properties"]["FunctionName"] == ref]
        assert [c["MaximumRetryAttempts"] for c in mine] == [0], (
            f"{spec.name}: its asynchronous self-invocations must not be retried"
        )


def test_no_policy_anywhere_grants_every_action(synthesized):
    for stack, template in synthesized.templates.items():
        for logical, resource in template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                for action in _actions(statement):
                    assert action != "*" and not action.endswith(":*"), (stack, logical, action)

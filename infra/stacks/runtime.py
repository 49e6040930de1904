"""The layers and one Lambda function per concern, from the table in infra/functions.py.

Each function gets its own role holding only what its row asks for, its own log group, the
runtime and agents layers (the ``ml`` layer where the row says so, or where it runs agents and
some agent of ``agents/`` retrieves: :func:`infra.functions.carries_ml`; ``faiss`` and ``mcp``
only where some document uses them: :func:`~infra.functions.carries_faiss`,
:func:`~infra.functions.carries_mcp`), and an environment
that names where its secrets are rather than holding them (the resolver reads them at cold
start; see infra/lambda_env/astromesh_env.py).

The state machines' ARNs are built from their names (infra/config.py), not read from the
orchestration stack, which itself needs these functions' ARNs: a reference both ways would be
a dependency cycle (infra/README.md, "Cycles avoided").
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from astromesh.config import load_path
from infra import environment as env
from infra.bundling import agents_recipe, faiss_recipe, mcp_recipe, ml_recipe, runtime_recipe
from infra.config import Names, StageSettings
from infra.functions import FUNCTIONS, FunctionSpec, carries_faiss, carries_mcp, carries_ml
from infra.metrics import NAMESPACE
from infra.stacks import _common
from infra.stacks.data import DataStack
from infra.stacks.network import NetworkStack

WS_CALLBACK_PARAMETER = "websocket/callback-url"
GPU_ENDPOINT_PARAMETER = "model-serving/endpoint"


class RuntimeStack(Stack):
    """Layers and functions. :attr:`functions`, :attr:`roles` and :attr:`log_groups` are keyed
    by the table's names; rows whose handler does not exist yet are absent."""

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
        self.settings = settings
        self.names = names
        self.network = network
        self.data = data
        self.runtime_layer = _common.layer(
            self, "RuntimeLayer", runtime_recipe(), settings, "astromesh runtime (light)"
        )
        self.ml_layer = _common.layer(
            self, "MlLayer", ml_recipe(), settings, "numpy, onnxruntime, tokenizers, MiniLM"
        )
        self.runtime_sources_layer: lambda_.LayerVersion | None = None
        """The runtime layer without bytecode, for the functions carrying ``ml``: with it they
        would exceed the 150 MiB target (docs/performance.md). Made when one does."""
        agents = agents_recipe()
        self.agents_layer = _common.layer(
            self, "AgentsLayer", agents, settings, "agents/ at /opt/agents"
        )
        self.agents = load_path(agents.source)
        """The documents the agents layer ships: which functions need ``ml``, ``faiss`` and
        ``mcp`` depends on them."""
        self.faiss_layer: lambda_.LayerVersion | None = None
        self.mcp_layer: lambda_.LayerVersion | None = None
        if any(s.exists and carries_faiss(s, self.agents) for s in FUNCTIONS):
            self.faiss_layer = _common.layer(
                self, "FaissLayer", faiss_recipe(), settings, "FAISS (beside the ml layer)"
            )
        if any(s.exists and carries_mcp(s, self.agents) for s in FUNCTIONS):
            self.mcp_layer = _common.layer(
                self, "McpLayer", mcp_recipe(), settings, "the MCP SDK (agents with MCP tools)"
            )
        self.adot_layer = (
            lambda_.LayerVersion.from_layer_version_arn(self, "Adot", settings.adot_layer_arn)
            if settings.adot_layer_arn
            else None
        )
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        for spec in FUNCTIONS:
            if spec.exists:
                self._function(spec)
            else:
                Annotations.of(self).add_warning_v2(
                    f"astromesh:missing-{spec.name}",
                    f"functions/{spec.name}/handler.py does not exist yet: not deployed",
                )
        if "ingestion" in self.functions:
            documents = s3.Bucket.from_bucket_name(
                self, "Documents", _common.documents_bucket_name(names)
            )
            destination = s3n.LambdaDestination(self.functions["ingestion"])
            documents.add_event_notification(s3.EventType.OBJECT_CREATED, destination)
            documents.add_event_notification(s3.EventType.OBJECT_REMOVED, destination)
            _common.suppress(
                self,
                {
                    f"AwsSolutions-IAM4[{_common.MANAGED_BASIC_EXECUTION}]": "CDK's "
                    "bucket-notifications handler uses AWSLambdaBasicExecutionRole (logs only).",
                    "AwsSolutions-IAM5[Resource::*]": "CDK's bucket-notifications handler "
                    "calls s3:PutBucketNotification (granted on '*' by aws-cdk-lib).",
                },
            )

    # -- one function ---------------------------------------------------------------------------

    def _function(self, spec: FunctionSpec) -> None:
        name = self.names.function(spec.name)
        logs_to = _common.log_group(self, f"{spec.name}-logs", self.settings, f"/aws/lambda/{name}")
        role = _common.function_role(
            self, f"{spec.name}-role", description=spec.concern, logs_to=logs_to
        )
        layers: list[lambda_.ILayerVersion] = [self.runtime_layer, self.agents_layer]
        if carries_ml(spec, self.agents):
            if self.runtime_sources_layer is None:
                self.runtime_sources_layer = _common.layer(
                    self,
                    "RuntimeSourcesLayer",
                    runtime_recipe(bytecode=False),
                    self.settings,
                    "astromesh runtime (light), without bytecode (beside ml)",
                )
            layers = [self.runtime_sources_layer, self.agents_layer, self.ml_layer]
        if self.faiss_layer is not None and carries_faiss(spec, self.agents):
            layers.append(self.faiss_layer)
        if self.mcp_layer is not None and carries_mcp(spec, self.agents):
            layers.append(self.mcp_layer)
        if self.adot_layer is not None:
            layers.append(self.adot_layer)
        function = _common.python_function(
            self,
            spec.name,
            function_name=name,
            code=lambda_.Code.from_asset(str(spec.folder), exclude=["__pycache__", "*.pyc"]),
            role=role,
            logs_to=logs_to,
            memory_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
            layers=layers,
            environment=self._environment(spec, role),
            description=spec.concern,
            reserved=self.settings.reserved_concurrency.get(spec.name),
            vpc=self.network.vpc,
            vpc_subnets=self.network.app_subnets,
            security_groups=[self.network.functions_sg],
            retry_attempts=0 if spec.invokes_itself else None,
        )
        self._grant_beyond_environment(spec, role)
        self.functions[spec.name] = function
        self.roles[spec.name] = role
        self.log_groups[spec.name] = logs_to

    def _grant_beyond_environment(self, spec: FunctionSpec, role: iam.Role) -> None:
        """What the row allows besides reading the secrets of its environment."""
        if spec.invokes_itself:
            # By name: the function's own ARN attribute in its role's policy would be a cycle.
            itself = self.format_arn(
                service="lambda",
                resource="function",
                resource_name=self.names.function(spec.name),
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[itself])
            )
        if spec.reads_documents:
            objects = f"arn:{Aws.PARTITION}:s3:::{_common.documents_bucket_name(self.names)}/*"
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects])
            )
            _common.suppress(
                role,
                {
                    "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::"
                    f"{self.names.prefix}-documents-<AWS::AccountId>-<AWS::Region>/*]": "Reads "
                    "the objects of the documents bucket whose events it is sent (keys are "
                    "only known per event)."
                },
            )

    def _environment(self, spec: FunctionSpec, role: iam.Role) -> dict[str, str]:
        """The row's environment; every secret it names is granted to ``role`` here, so a
        variable and its permission cannot drift apart."""
        data = self.data
        variables = {
            env.AGENTS_DIR_ENV: env.AGENTS_DIR,
            env.STATE_BACKEND_ENV: self.settings.state_backend,
            env.STAGE_ENV: self.settings.name,
            "POWERTOOLS_SERVICE_NAME": spec.service,
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
            "OTEL_SERVICE_NAME": spec.service,
            # PostgreSQL through RDS Proxy: no secret, an IAM token per connection, as the
            # application user only; no server-side prepared statements (they pin sessions).
            env.POSTGRES_DSN_ENV: data.postgres_dsn,
            env.POSTGRES_IAM_AUTH_ENV: "true",
            env.POSTGRES_PREPARE_THRESHOLD_ENV: "none",
        }
        data.proxy.grant_connect(role, _common.POSTGRES_APP_USER)
        resolve: list[dict[str, str]] = [
            {"env": env.REDIS_URL_ENV, "secret": data.redis_auth.secret_arn,
             "format": data.redis_url_format},
        ]  # fmt: skip
        data.redis_auth.grant_read(role)
        if spec.model_keys:
            resolve.append({"secret": data.provider_keys.secret_arn})
            data.provider_keys.grant_read(role)
            if self.settings.gpu is not None:
                variables[env.GPU_ENDPOINT_ENV] = ssm.StringParameter.value_for_string_parameter(
                    self, self.names.parameter(GPU_ENDPOINT_PARAMETER)
                )
                resolve.append(
                    {
                        "env": env.GPU_API_KEY_ENV,
                        "secret": data.gpu_key.secret_arn,
                        "key": "api_key",
                    }
                )
                data.gpu_key.grant_read(role)
        if spec.channel is not None:
            secret = data.channel_secrets[spec.channel]
            resolve.append({"secret": secret.secret_arn})
            secret.grant_read(role)
        if spec.name == "api":
            variables[env.AUTH_ENV] = "required"
            variables[env.MAX_BODY_ENV] = str(self.settings.max_body_bytes)
        if spec.starts_runs:
            self._start_runs(variables, role)
        if spec.runs_workflows:
            self._run_workflows(variables, role)
        if spec.posts_frames:
            parameter = self.names.parameter(WS_CALLBACK_PARAMETER)
            resolve.append({"env": env.WS_CALLBACK_URL_ENV, "parameter": parameter})
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["ssm:GetParameter"],
                    resources=[
                        self.format_arn(
                            service="ssm", resource="parameter", resource_name=parameter.lstrip("/")
                        )
                    ],
                )
            )
        if self.settings.adot_layer_arn:
            variables[env.NEXT_WRAPPER_ENV] = env.ADOT_WRAPPER
        variables.update(_common.resolve_environment(self, resolve))
        # Declared empty: what the function reads besides the above, so that sam local's
        # --env-vars (which only sets declared variables) and astromesh local can set it.
        declared = env.declared_variables(spec, agents_recipe().source)
        return {**dict.fromkeys(declared, ""), **variables}

    def _start_runs(self, variables: dict[str, str], role: iam.Role) -> None:
        express, standard = (self.state_machine_arn(kind) for kind in ("express", "standard"))
        variables[env.SFN_EXPRESS_ARN_ENV] = express
        variables[env.SFN_STANDARD_ARN_ENV] = standard
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartSyncExecution"], resources=[express])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[standard])
        )

    def _run_workflows(self, variables: dict[str, str], role: iam.Role) -> None:
        """Start workflow executions, and resume the approvals they wait on."""
        workflows = self.state_machine_arn("workflows")
        variables[env.SFN_WORKFLOW_ARN_ENV] = workflows
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[workflows])
        )
        # A task token of a service-integration Task (lambda:invoke.waitForTaskToken) cannot
        # be scoped by IAM: SendTaskSuccess / SendTaskFailure take '*' (the role's cdk-nag
        # acknowledgement of IAM5[Resource::*] is function_role's). Only this row has them.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure"], resources=["*"]
            )
        )

    def state_machine_arn(self, kind: str) -> str:
        """The ARN the orchestration stack's machine of ``kind`` will have (by its name)."""
        return self.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.names.state_machine(kind),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

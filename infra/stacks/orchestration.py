"""The step loop's two state machines, both from the runtime's own ASL.

``astromesh.executors.stepfunctions.build_definition`` produces the definition with ``${...}``
placeholders for the two functions; CloudFormation's ``DefinitionSubstitutions`` fills them,
so the deployed document is byte for byte the runtime's (tests compare them).

- Express (``StartSyncExecution``): synchronous REST runs; at most 5 minutes.
- Standard (``StartExecution``): async REST runs and channel runs (WhatsApp, Telegram,
  WebSocket), up to the stage's limit; each run's history is kept by Step Functions.

Both log every event (payloads are ids only, so execution data is logged too) and are traced
with X-Ray. Their names are fixed (infra/config.py) so the functions that start them know
their ARNs without referring to this stack; the ARNs are also published in SSM.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from astromesh.executors.stepfunctions import build_definition
from infra.config import Names, StageSettings
from infra.stacks import _common
from infra.stacks.runtime import RuntimeStack

KINDS = {"express": sfn.StateMachineType.EXPRESS, "standard": sfn.StateMachineType.STANDARD}


def definition_json(settings: StageSettings) -> str:
    """The ASL deployed for ``settings`` (placeholders left for CloudFormation)."""
    return build_definition(max_concurrency=settings.sfn_max_concurrency).to_json()


class OrchestrationStack(Stack):
    """:attr:`machines` keyed ``express`` / ``standard``."""

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
        step = runtime.functions["orchestration_step"]
        tool = runtime.functions["tool_executor"]
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Astromesh state machines: invoke the step and tool functions",
        )
        # The definition invokes the unqualified ARNs, so no version wildcard (':*') is granted.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[step.function_arn, tool.function_arn]
            )
        )
        substitutions = {
            "OrchestrationStepFunctionArn": step.function_arn,
            "ToolExecutorFunctionArn": tool.function_arn,
        }
        body = definition_json(settings)
        self.machines: dict[str, sfn.StateMachine] = {}
        for kind, machine_type in KINDS.items():
            name = names.state_machine(kind)
            logs_to = _common.log_group(
                self, f"{kind}-logs", settings, f"/aws/vendedlogs/states/{name}"
            )
            machine = sfn.StateMachine(
                self,
                kind,
                state_machine_name=name,
                state_machine_type=machine_type,
                definition_body=sfn.DefinitionBody.from_string(body),
                definition_substitutions=substitutions,
                role=role,
                logs=sfn.LogOptions(
                    destination=logs_to, level=sfn.LogLevel.ALL, include_execution_data=True
                ),
                tracing_enabled=True,
                timeout=(
                    Duration.minutes(settings.standard_timeout_minutes)
                    if machine_type is sfn.StateMachineType.STANDARD
                    else Duration.minutes(5)
                ),
            )
            self.machines[kind] = machine
            ssm.StringParameter(
                self,
                f"{kind}-arn",
                parameter_name=names.parameter(f"state-machines/{kind}-arn"),
                string_value=machine.state_machine_arn,
                description=f"ARN of the {kind} state machine",
            )
        _common.suppress(
            role,
            {
                "AwsSolutions-IAM5[Resource::*]": "CloudWatch Logs vended-delivery actions and "
                "X-Ray's PutTraceSegments / PutTelemetryRecords: AWS grants them only on '*'."
            },
        )

"""The step loop's two state machines and the workflow machine, from the runtime's own ASL.

``astromesh.executors.stepfunctions.build_definition`` produces the definition with ``${...}``
placeholders for the two functions; CloudFormation's ``DefinitionSubstitutions`` fills them,
so the deployed document is byte for byte the runtime's (tests compare them).

- Express (``StartSyncExecution``): synchronous REST runs; at most 5 minutes.
- Standard (``StartExecution``): async REST runs and channel runs (WhatsApp, Telegram,
  WebSocket), up to the stage's limit; each run's history is kept by Step Functions.

- Workflows (Standard, ``StartExecution``): one machine interprets every stored Workflow
  (``astromesh.workflows.stepfunctions``), so workflows registered through the API run
  without a deploy. Its own role invokes ``workflow_step`` and ``tool_executor``, starts
  agent steps as child executions of the Standard machine (``startExecution.sync:2``, which
  also needs ``DescribeExecution`` / ``StopExecution`` on them and Step Functions' managed
  EventBridge rule), and nothing else; approvals wait on task tokens that only the API
  function may answer (infra/stacks/runtime.py).

All log every event (payloads are ids only, so execution data is logged too) and are traced
with X-Ray. Their names are fixed (infra/config.py) so the functions that start them know
their ARNs without referring to this stack; the ARNs are also published in SSM.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, Aws, Duration, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from astromesh.executors.stepfunctions import build_definition
from astromesh.workflows.stepfunctions.definition import build_workflow_definition
from infra.config import Names, StageSettings
from infra.stacks import _common
from infra.stacks.runtime import RuntimeStack

WORKFLOWS = "workflows"
"""The workflow machine's kind in :attr:`OrchestrationStack.machines` and its name."""
SYNC_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
"""The EventBridge rule Step Functions manages for ``states:startExecution.sync``."""

KINDS = {"express": sfn.StateMachineType.EXPRESS, "standard": sfn.StateMachineType.STANDARD}


def definition_json(settings: StageSettings) -> str:
    """The ASL deployed for ``settings`` (placeholders left for CloudFormation)."""
    return build_definition(max_concurrency=settings.sfn_max_concurrency).to_json()


def workflow_definition_json(settings: StageSettings) -> str:
    """The workflow machine's ASL (placeholders left for CloudFormation)."""
    return build_workflow_definition(max_concurrency=settings.sfn_max_concurrency).to_json()


class OrchestrationStack(Stack):
    """:attr:`machines` keyed ``express`` / ``standard`` / ``workflows`` (the last once the
    ``workflow_step`` function is written)."""

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
            self._publish(kind, machine, names)
        _common.suppress(
            role,
            {
                "AwsSolutions-IAM5[Resource::*]": "CloudWatch Logs vended-delivery actions and "
                "X-Ray's PutTraceSegments / PutTelemetryRecords: AWS grants them only on '*'."
            },
        )
        if "workflow_step" in runtime.functions:
            self._workflow_machine(settings, names, runtime)

    def _publish(self, kind: str, machine: sfn.StateMachine, names: Names) -> None:
        self.machines[kind] = machine
        ssm.StringParameter(
            self,
            f"{kind}-arn",
            parameter_name=names.parameter(f"state-machines/{kind}-arn"),
            string_value=machine.state_machine_arn,
            description=f"ARN of the {kind} state machine",
        )

    def _workflow_machine(
        self, settings: StageSettings, names: Names, runtime: RuntimeStack
    ) -> None:
        step = runtime.functions["workflow_step"]
        tool = runtime.functions["tool_executor"]
        agents = self.machines["standard"]
        role = iam.Role(
            self,
            "WorkflowRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Astromesh workflow machine: workflow steps, tools, child agent runs",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[step.function_arn, tool.function_arn]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"], resources=[agents.state_machine_arn]
            )
        )
        child_executions = self.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{names.state_machine('standard')}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[child_executions],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    self.format_arn(service="events", resource="rule", resource_name=SYNC_RULE)
                ],
            )
        )
        name = names.state_machine(WORKFLOWS)
        logs_to = _common.log_group(
            self, "workflows-logs", settings, f"/aws/vendedlogs/states/{name}"
        )
        machine = sfn.StateMachine(
            self,
            WORKFLOWS,
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(workflow_definition_json(settings)),
            definition_substitutions={
                "WorkflowStepFunctionArn": step.function_arn,
                "ToolExecutorFunctionArn": tool.function_arn,
                "AgentStateMachineArn": agents.state_machine_arn,
            },
            role=role,
            logs=sfn.LogOptions(
                destination=logs_to, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        self._publish(WORKFLOWS, machine, names)
        children = (
            f"arn:<AWS::Partition>:states:{self._nag(self.region)}:{self._nag(self.account)}:"
            f"execution:{names.state_machine('standard')}:*"
        )
        _common.suppress(
            role,
            {
                "AwsSolutions-IAM5[Resource::*]": "CloudWatch Logs vended-delivery actions and "
                "X-Ray's PutTraceSegments / PutTelemetryRecords: AWS grants them only on '*'.",
                f"AwsSolutions-IAM5[Resource::{children}]": "Child "
                "agent runs are named by their run id at run time: .sync:2 describes and stops "
                "any execution of the agent Standard machine.",
            },
        )

    @staticmethod
    def _nag(value: str) -> str:
        """How cdk-nag spells the stack's region or account in a finding: the literal of a
        concrete environment, else the pseudo parameter."""
        if not Token.is_unresolved(value):
            return value
        return "<AWS::Region>" if value == Aws.REGION else "<AWS::AccountId>"

"""Alarms and one dashboard over what the functions, machines and APIs report.

Alarms (to one encrypted SNS topic; ``-c alarmEmail=...`` subscribes an address):
- every function: ``Errors`` and ``Throttles``;
- both state machines: ``ExecutionsFailed`` and ``ExecutionsTimedOut``;
- the REST API: ``5XXError``;
- the runtime's EMF metrics (circuit-breaker opens, runs finalized failed or timed out by
  either executor, model cost per day), named in astromesh.telemetry.metrics (see
  infra/metrics.py); with no data (no runs) they are not breaching.

Tracing: every function and machine sends X-Ray traces; with ``-c adotLayerArn=...`` the
functions also run under the ADOT layer (OpenTelemetry SDK), which exports the runtime's
``astromesh.*`` spans (``OTEL_SERVICE_NAME`` is set per function).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra import metrics
from infra.config import Names, StageSettings
from infra.stacks.api import ApiStack
from infra.stacks.orchestration import OrchestrationStack
from infra.stacks.runtime import RuntimeStack

FIVE_MINUTES = Duration.minutes(5)


class ObservabilityStack(Stack):
    """:attr:`alarms` keyed by a readable name (tests and the dashboard use the keys)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: StageSettings,
        names: Names,
        runtime: RuntimeStack,
        orchestration: OrchestrationStack,
        api: ApiStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.settings = settings
        key = kms.Key(self, "AlarmsKey", enable_key_rotation=True, description="Alarm topic")
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(
            self, "Alarms", topic_name=names.stack("alarms"), master_key=key, enforce_ssl=True
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=names.stack("overview"))

        # -- functions -------------------------------------------------------------------------
        for name, function in runtime.functions.items():
            errors = function.metric_errors(period=FIVE_MINUTES, statistic="Sum")
            throttles = function.metric_throttles(period=FIVE_MINUTES, statistic="Sum")
            self._alarm(f"{name}-errors", errors, threshold=1)
            self._alarm(f"{name}-throttles", throttles, threshold=1)
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{name}: invocations, errors, throttles",
                    left=[function.metric_invocations(period=FIVE_MINUTES), errors, throttles],
                    right=[function.metric_duration(period=FIVE_MINUTES, statistic="p95")],
                    width=12,
                )
            )

        # -- state machines --------------------------------------------------------------------
        for kind, machine in orchestration.machines.items():
            failed = machine.metric_failed(period=FIVE_MINUTES, statistic="Sum")
            timed_out = machine.metric_timed_out(period=FIVE_MINUTES, statistic="Sum")
            self._alarm(f"{kind}-executions-failed", failed, threshold=1)
            self._alarm(f"{kind}-executions-timed-out", timed_out, threshold=1)
            dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{kind} machine: started, succeeded, failed, timed out",
                    left=[
                        machine.metric_started(period=FIVE_MINUTES),
                        machine.metric_succeeded(period=FIVE_MINUTES),
                        failed,
                        timed_out,
                    ],
                    width=12,
                )
            )

        # -- ingress ---------------------------------------------------------------------------
        server_errors = api.rest.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        self._alarm("rest-5xx", server_errors, threshold=5)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="REST: requests, 4XX, 5XX, p95 latency",
                left=[
                    api.rest.metric_count(period=FIVE_MINUTES),
                    api.rest.metric_client_error(period=FIVE_MINUTES, statistic="Sum"),
                    server_errors,
                ],
                right=[api.rest.metric_latency(period=FIVE_MINUTES, statistic="p95")],
                width=12,
            )
        )

        # -- the runtime's own metrics (EMF) -------------------------------------------------
        runtime_metrics = {m.name: self._runtime_metric(m) for m in metrics.ALARMED_METRICS}
        self._alarm("circuit-opened", runtime_metrics[metrics.CIRCUIT_OPENED.name], threshold=1)
        self._alarm("runs-failed", runtime_metrics[metrics.RUNS_FAILED.name], threshold=5)
        cost = self._runtime_metric(metrics.RUN_COST, period=Duration.days(1))
        self._alarm("cost-per-day", cost, threshold=settings.daily_cost_alarm_usd)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Runtime: circuit opens, failed runs",
                left=[
                    runtime_metrics[metrics.CIRCUIT_OPENED.name],
                    runtime_metrics[metrics.RUNS_FAILED.name],
                ],
                width=12,
            ),
            cloudwatch.SingleValueWidget(title="Model cost, last 24 h (USD)", metrics=[cost]),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values())),
        )

    def _runtime_metric(
        self, metric: metrics.RuntimeMetric, period: Duration = FIVE_MINUTES
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=metrics.NAMESPACE,
            metric_name=metric.name,
            dimensions_map={metrics.STAGE_DIMENSION: self.settings.name},
            statistic=metric.statistic,
            period=period,
        )

    def _alarm(self, name: str, metric: cloudwatch.IMetric, *, threshold: float) -> None:
        alarm = metric.create_alarm(
            self,
            f"alarm-{name}",
            alarm_name=f"astromesh-{self.settings.name}-{name}",
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms[name] = alarm

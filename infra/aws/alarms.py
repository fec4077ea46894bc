"""Alarms: an SNS topic to the on-call email, trainer and endpoint alarms, a monthly budget, a dashboard."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.endpoint import Endpoint
from infra.aws.trainer import Trainers
from infra.config import Settings
from infra.launch import CWAGENT_NAMESPACE, GPU_IDLE_PERCENT, GPU_UTILIZATION_METRIC

BUDGET_THRESHOLDS = (80, 100)
LAMBDA = "AWS/Lambda"


class Alarms(pulumi.ComponentResource):
    """What tells a person (and EC2) that something costs money for nothing or serves badly.

    Trainers: GPUs idle for `idleStopMinutes` stops the instance (the same rule the on-instance watchdog
    applies, so either one suffices); a failed system status check recovers on-demand instances onto
    new hardware (EC2 cannot recover spot instances: those alarms notify only). Endpoint: error rate,
    throttles, p99 latency. The budget is filtered by the `stack` cost-allocation tag, so each stack in
    a shared account has its own (activate the tag once per account in the Billing console).
    The topic is not KMS-encrypted: CloudWatch cannot publish with the AWS-managed SNS key, and alarm
    notifications carry no data.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        trainers: Trainers,
        endpoint: Endpoint,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:aws:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = settings.location.region
        self.topic = aws.sns.Topic(name, tags=settings.tags, opts=child)
        self.subscription = aws.sns.TopicSubscription(
            name, topic=self.topic.arn, protocol="email", endpoint=settings.alarms.email, opts=child
        )
        self.gpu_idle = [
            self._gpu_idle(f"{name}-gpu-idle-{index}", settings, instance_id)
            for index, instance_id in enumerate(trainers.ids)
        ]
        recover = [] if settings.trainer.spot else [f"arn:aws:automate:{region}:ec2:recover"]
        self.system_check = [
            aws.cloudwatch.MetricAlarm(
                f"{name}-system-check-{index}",
                alarm_description="EC2 system status check failed: move the trainer to healthy hardware",
                namespace="AWS/EC2",
                metric_name="StatusCheckFailed_System",
                dimensions={"InstanceId": instance_id},
                statistic="Maximum",
                period=60,
                evaluation_periods=2,
                comparison_operator="GreaterThanThreshold",
                threshold=0,
                alarm_actions=[*recover, self.topic.arn],
                tags=settings.tags,
                opts=child,
            )
            for index, instance_id in enumerate(trainers.ids)
        ]
        function = endpoint.function.name
        self.error_rate = self._error_rate(f"{name}-error-rate", settings, function)
        self.throttles = aws.cloudwatch.MetricAlarm(
            f"{name}-throttles",
            alarm_description="The endpoint refused requests over its reserved concurrency",
            namespace=LAMBDA,
            metric_name="Throttles",
            dimensions={"FunctionName": function},
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            comparison_operator="GreaterThanThreshold",
            threshold=0,
            treat_missing_data="notBreaching",
            alarm_actions=[self.topic.arn],
            tags=settings.tags,
            opts=child,
        )
        self.p99_latency = aws.cloudwatch.MetricAlarm(
            f"{name}-p99-latency",
            alarm_description=f"Endpoint p99 duration above {settings.alarms.p99_latency_ms} ms",
            namespace=LAMBDA,
            metric_name="Duration",
            dimensions={"FunctionName": function},
            extended_statistic="p99",
            period=60,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator="GreaterThanThreshold",
            threshold=settings.alarms.p99_latency_ms,
            treat_missing_data="notBreaching",
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            tags=settings.tags,
            opts=child,
        )
        self.budget = aws.budgets.Budget(
            name,
            name=name,
            budget_type="COST",
            limit_amount=f"{settings.alarms.monthly_budget_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:stack${settings.stack}"]}],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "threshold": percent,
                    "threshold_type": "PERCENTAGE",
                    "notification_type": "ACTUAL",
                    "subscriber_email_addresses": [settings.alarms.email],
                }
                for percent in BUDGET_THRESHOLDS
            ],
            tags=settings.tags,
            opts=child,
        )
        self.dashboard = aws.cloudwatch.Dashboard(
            name,
            dashboard_name=name,
            dashboard_body=pulumi.Output.all(function, *trainers.ids).apply(
                lambda values: json.dumps(dashboard(region, values[0], values[1:]))
            ),
            opts=child,
        )
        self.dashboard_url = self.dashboard.dashboard_name.apply(
            lambda dashboard_name: (
                f"https://{region}.console.aws.amazon.com/cloudwatch/home"
                f"?region={region}#dashboards:name={dashboard_name}"
            )
        )
        self.register_outputs({"topic": self.topic.arn, "dashboardUrl": self.dashboard_url})

    def _gpu_idle(
        self, name: str, settings: Settings, instance_id: pulumi.Input[str]
    ) -> aws.cloudwatch.MetricAlarm:
        """Every GPU below GPU_IDLE_PERCENT for idleStopMinutes: stop the instance and tell the topic.

        Missing data (stopped, or booting before the agent reports) is not idle: the on-instance
        watchdog covers a node whose agent never starts.
        """
        minutes = settings.trainer.idle_stop_minutes
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=f"Trainer GPUs below {GPU_IDLE_PERCENT}% for {minutes} minutes: stop it",
            namespace=CWAGENT_NAMESPACE,
            metric_name=GPU_UTILIZATION_METRIC,
            dimensions={"InstanceId": instance_id},
            statistic="Maximum",
            period=60,
            evaluation_periods=minutes,
            comparison_operator="LessThanThreshold",
            threshold=GPU_IDLE_PERCENT,
            treat_missing_data="notBreaching",
            alarm_actions=[f"arn:aws:automate:{settings.location.region}:ec2:stop", self.topic.arn],
            tags=settings.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _error_rate(
        self, name: str, settings: Settings, function: pulumi.Input[str]
    ) -> aws.cloudwatch.MetricAlarm:
        """Errors / Invocations in percent, over errorRatePercent in 3 of 5 minutes."""

        def metric(query_id: str, metric_name: str) -> dict[str, Any]:
            return {
                "id": query_id,
                "return_data": False,
                "metric": {
                    "namespace": LAMBDA,
                    "metric_name": metric_name,
                    "dimensions": {"FunctionName": function},
                    "period": 60,
                    "stat": "Sum",
                },
            }

        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=f"Endpoint errors above {settings.alarms.error_rate_percent:g}% of invocations",
            metric_queries=[
                metric("errors", "Errors"),
                metric("invocations", "Invocations"),
                {
                    "id": "rate",
                    "expression": "100 * errors / invocations",
                    "label": "error rate (%)",
                    "return_data": True,
                },
            ],
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator="GreaterThanThreshold",
            threshold=settings.alarms.error_rate_percent,
            treat_missing_data="notBreaching",
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            tags=settings.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )


def dashboard(region: str, function: str, instance_ids: Sequence[str]) -> dict[str, Any]:
    """One row for the trainers' GPUs, one for the endpoint's traffic, errors and latency."""

    def widget(title: str, metrics: list[list[Any]], x: int, y: int) -> dict[str, Any]:
        properties = {
            "title": title,
            "region": region,
            "metrics": metrics,
            "period": 60,
            "view": "timeSeries",
        }
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": properties}

    gpu = [
        [CWAGENT_NAMESPACE, GPU_UTILIZATION_METRIC, "InstanceId", i, {"stat": "Maximum"}]
        for i in instance_ids
    ]
    return {
        "widgets": [
            widget("Trainer GPU utilization (%)", gpu, 0, 0),
            widget(
                "Trainer system status checks",
                [["AWS/EC2", "StatusCheckFailed_System", "InstanceId", i] for i in instance_ids],
                12,
                0,
            ),
            widget(
                "Endpoint invocations, errors, throttles",
                [
                    [LAMBDA, name, "FunctionName", function, {"stat": "Sum"}]
                    for name in ("Invocations", "Errors", "Throttles")
                ],
                0,
                6,
            ),
            widget(
                "Endpoint duration p50 / p99 (ms)",
                [[LAMBDA, "Duration", "FunctionName", function, {"stat": s}] for s in ("p50", "p99")],
                12,
                6,
            ),
        ]
    }

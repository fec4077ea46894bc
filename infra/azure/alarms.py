"""Alarms: an action group mailing the on-call address, trainer and endpoint alerts, a budget, a workbook."""

from __future__ import annotations

import datetime
import json
import uuid

import pulumi
from pulumi_azure_native import applicationinsights, consumption, monitor

from infra.azure.endpoint import Endpoint
from infra.azure.site import Site
from infra.azure.trainer import Trainers
from infra.launch import GPU_IDLE_PERCENT
from infra.platform import resource_name

CPU_IDLE_PERCENT = 5
# Telegraf's nvidia_smi input, published by the trainer's startup script as Azure Monitor custom metrics.
GPU_NAMESPACE = "Telegraf/nvidia_smi"
GPU_METRIC = "utilization_gpu"
VM_NAMESPACE = "Microsoft.Compute/virtualMachines"
BUDGET_THRESHOLDS = (80, 100)
# Window sizes Azure Monitor metric alerts accept, in minutes.
WINDOWS = (
    (5, "PT5M"),
    (15, "PT15M"),
    (30, "PT30M"),
    (60, "PT1H"),
    (360, "PT6H"),
    (720, "PT12H"),
    (1440, "PT24H"),
)
ERROR_RATE_QUERY = (
    "requests | summarize total = count(), failed = countif(toint(resultCode) >= 500)"
    " | extend rate = iff(total == 0, 0.0, 100.0 * failed / total)"
)
LATENCY_QUERY = "requests | summarize p99 = percentile(duration, 99)"


def idle_window(idle_stop_minutes: int) -> str:
    """The alert window: twice the watchdog's idle period, so it fires only when the watchdog did not act."""
    return next((iso for minutes, iso in WINDOWS if minutes >= 2 * idle_stop_minutes), WINDOWS[-1][1])


def month_start(today: datetime.date) -> str:
    """Budgets start on the first of the current month (Azure refuses other days)."""
    return f"{today:%Y-%m}-01T00:00:00Z"


class Alarms(pulumi.ComponentResource):
    """Idle-GPU/CPU and availability alerts per trainer VM, 5xx-rate and p99 alerts on the endpoint, and a
    budget on the resource group at 80 % and 100 %, all to the alarm email."""

    def __init__(
        self,
        name: str,
        site: Site,
        trainer: Trainers,
        endpoint: Endpoint,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:azure:Alarms", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        alarms = site.settings.alarms
        self.action_group = monitor.ActionGroup(
            name,
            action_group_name=resource_name(site.settings, "alarms"),
            resource_group_name=site.group_name,
            location="Global",
            group_short_name="cloudai",
            enabled=True,
            email_receivers=[
                {"name": "on-call", "email_address": alarms.email, "use_common_alert_schema": True}
            ],
            tags=site.tags,
            opts=self._child,
        )
        self.topic: pulumi.Output[str] = self.action_group.id
        self.trainer_alerts = [
            alert
            for index, vm in enumerate(trainer.instances)
            for alert in self._vm_alerts(name, site, index, vm.id)
        ]
        self.endpoint_alerts = self._endpoint_alerts(name, site, endpoint)
        self.budget = self._budget(name, site)
        self.workbook = self._workbook(name, site, trainer, endpoint)
        self.dashboard_url = pulumi.Output.concat(
            "https://portal.azure.com/#@", site.tenant_id, "/resource", self.workbook.id, "/workbook"
        )
        self.register_outputs({"topic": self.topic, "dashboard_url": self.dashboard_url})

    def _metric_alert(
        self, name: str, site: Site, scope: pulumi.Input[str], criterion: dict, window: str, severity: int
    ) -> monitor.MetricAlert:
        return monitor.MetricAlert(
            name,
            resource_group_name=site.group_name,
            location="global",
            description=criterion["name"],
            severity=severity,
            enabled=True,
            scopes=[scope],
            evaluation_frequency="PT5M",
            window_size=window,
            auto_mitigate=True,
            # Typed args, not a dict: `criteria` is a union, and a plain dict would reach ARM in snake_case.
            criteria=monitor.MetricAlertSingleResourceMultipleMetricCriteriaArgs(
                odata_type="Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                all_of=[monitor.MetricCriteriaArgs(criterion_type="StaticThresholdCriterion", **criterion)],
            ),
            actions=[{"action_group_id": self.action_group.id}],
            tags=site.tags,
            opts=self._child,
        )

    def _vm_alerts(
        self, name: str, site: Site, index: int, vm_id: pulumi.Output[str]
    ) -> list[monitor.MetricAlert]:
        window = idle_window(site.settings.trainer.idle_stop_minutes)
        idle_cpu = {
            "name": f"trainer {index}: CPU below {CPU_IDLE_PERCENT}% (idle)",
            "metric_name": "Percentage CPU",
            "metric_namespace": VM_NAMESPACE,
            "operator": "LessThan",
            "threshold": CPU_IDLE_PERCENT,
            "time_aggregation": "Average",
        }
        idle_gpu = {
            "name": f"trainer {index}: GPU below {GPU_IDLE_PERCENT}% (idle)",
            "metric_name": GPU_METRIC,
            "metric_namespace": GPU_NAMESPACE,
            "operator": "LessThan",
            "threshold": GPU_IDLE_PERCENT,
            "time_aggregation": "Average",
            "skip_metric_validation": True,  # a custom metric exists only once the VM has published it
        }
        unavailable = {
            "name": f"trainer {index}: VM unavailable",
            "metric_name": "VmAvailabilityMetric",
            "metric_namespace": VM_NAMESPACE,
            "operator": "LessThan",
            "threshold": 1,
            "time_aggregation": "Average",
        }
        return [
            self._metric_alert(f"{name}-trainer-{index}-idle-cpu", site, vm_id, idle_cpu, window, 3),
            self._metric_alert(f"{name}-trainer-{index}-idle-gpu", site, vm_id, idle_gpu, window, 3),
            self._metric_alert(f"{name}-trainer-{index}-unavailable", site, vm_id, unavailable, "PT15M", 1),
        ]

    def _endpoint_alerts(self, name: str, site: Site, endpoint: Endpoint) -> list[monitor.ScheduledQueryRule]:
        """Log alerts on Application Insights requests: a 5xx *rate* and a *p99* need the raw requests,
        which platform metrics (Http5xx count, average response time) do not give."""
        alarms = site.settings.alarms
        checks = (
            ("error-rate", f"endpoint 5xx rate above {alarms.error_rate_percent:g}%", ERROR_RATE_QUERY,
             "rate", alarms.error_rate_percent, 1),
            ("latency", f"endpoint p99 above {alarms.p99_latency_ms} ms", LATENCY_QUERY, "p99",
             alarms.p99_latency_ms, 2),
        )  # fmt: skip
        return [
            monitor.ScheduledQueryRule(
                f"{name}-endpoint-{part}",
                resource_group_name=site.group_name,
                location=site.location,
                kind="LogAlert",
                description=description,
                display_name=description,
                severity=severity,
                enabled=True,
                scopes=[endpoint.insights_id],
                evaluation_frequency="PT5M",
                window_size="PT15M",
                auto_mitigate=True,
                criteria={
                    "all_of": [
                        {
                            "query": query,
                            "time_aggregation": "Maximum",
                            "metric_measure_column": column,
                            "operator": "GreaterThan",
                            "threshold": threshold,
                            "failing_periods": {
                                "number_of_evaluation_periods": 1,
                                "min_failing_periods_to_alert": 1,
                            },
                        }
                    ]
                },
                actions={"action_groups": [self.action_group.id]},
                tags=site.tags,
                opts=self._child,
            )
            for part, description, query, column, threshold, severity in checks
        ]

    def _budget(self, name: str, site: Site) -> consumption.Budget:
        alarms = site.settings.alarms
        notifications = {
            f"actual-{percent}-percent": {
                "enabled": True,
                "operator": "GreaterThanOrEqualTo",
                "threshold": percent,
                "threshold_type": "Actual",
                "contact_emails": [alarms.email],
                "contact_groups": [self.action_group.id],
            }
            for percent in BUDGET_THRESHOLDS
        }
        return consumption.Budget(
            name,
            budget_name=resource_name(site.settings, "budget"),
            scope=site.group_id,
            amount=alarms.monthly_budget_usd,
            category="Cost",
            time_grain="Monthly",
            time_period={"start_date": month_start(datetime.date.today())},
            notifications=notifications,
            # The start is fixed at creation; re-running next month must not try to move it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["timePeriod"]),
        )

    def _workbook(
        self, name: str, site: Site, trainer: Trainers, endpoint: Endpoint
    ) -> applicationinsights.Workbook:
        settings = site.settings
        content = pulumi.Output.all(endpoint.insights_id, *trainer.ids).apply(
            lambda ids: json.dumps(workbook_content(ids[0], ids[1:]))
        )
        return applicationinsights.Workbook(
            name,
            resource_name_=site.subscription_id.apply(
                lambda s: str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"{s}/{settings.project}/{settings.stack}/workbook")
                )
            ),
            resource_group_name=site.group_name,
            location=site.location,
            kind="shared",
            category="workbook",
            display_name=f"cloud-ai {settings.stack}",
            source_id=site.group_id,
            serialized_data=content,
            tags=site.tags,
            opts=self._child,
        )


def workbook_content(insights_id: str, vm_ids: list[str]) -> dict:
    """A workbook: the trainers' GPU and CPU utilization, the endpoint's requests, latency and errors."""

    def vm_chart(title: str, namespace: str, metric: str) -> dict:
        return {
            "type": 10,
            "name": title,
            "content": {
                "version": "MetricsItem/2.0",
                "size": 0,
                "chartType": 2,
                "resourceType": "microsoft.compute/virtualmachines",
                "resourceIds": vm_ids,
                "timeContext": {"durationMs": 86400000},
                "metrics": [{"namespace": namespace, "metric": f"{namespace}--{metric}", "aggregation": 4}],
                "title": title,
            },
        }

    requests = {
        "type": 3,
        "name": "endpoint requests",
        "content": {
            "version": "KqlItem/1.0",
            "query": "requests | summarize requests = count(), failed = countif(toint(resultCode) >= 500),"
            " p99_ms = percentile(duration, 99) by bin(timestamp, 5m) | render timechart",
            "size": 0,
            "title": "Endpoint: requests, 5xx and p99 latency",
            "timeContext": {"durationMs": 86400000},
            "queryType": 0,
            "resourceType": "microsoft.insights/components",
            "crossComponentResources": [insights_id],
        },
    }
    return {
        "version": "Notebook/1.0",
        "items": [
            vm_chart("Trainers: GPU utilization (%)", GPU_NAMESPACE, GPU_METRIC),
            vm_chart("Trainers: CPU (%)", VM_NAMESPACE, "Percentage CPU"),
            requests,
        ],
        "isLocked": False,
        "fallbackResourceIds": [insights_id],
    }

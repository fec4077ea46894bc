"""Alarms: an email channel; alert policies on idle GPUs, runaway trainers, the endpoint; budget, dashboard.

The GPU-idle policy tells people; the startup script's watchdog (same idle threshold, infra/launch.py) is
what actually stops the VM. Trainer metrics come from the Ops Agent and are selected by the stack's labels,
so the policies cover however many nodes the stack has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import Settings
from infra.gcp.endpoint import Endpoint
from infra.gcp.project import Project
from infra.gcp.trainer import ROLE_LABEL
from infra.launch import GPU_IDLE_PERCENT
from infra.platform import labels, resource_name

GPU_METRIC = "agent.googleapis.com/gpu/utilization"
UPTIME_METRIC = "compute.googleapis.com/instance/uptime_total"
REQUESTS_METRIC = "run.googleapis.com/request_count"
LATENCY_METRIC = "run.googleapis.com/request_latencies"
# A training run that has not exported after two days is stuck (or forgotten): someone should look.
RUNAWAY_HOURS = 48
BUDGET_THRESHOLDS = (0.8, 1.0)
# Endpoint filters name the Cloud Run service, known only once it exists: filled in per policy.
SERVICE_SLOT = "${service}"


@dataclass(frozen=True)
class Watch:
    """One single-condition alert policy: which series, how they are reduced, and when it fires."""

    part: str
    title: str
    filter: str
    aligner: str
    reducer: str
    group_by: str
    comparison: str
    threshold: float
    duration_s: int
    why: str
    denominator: str | None = None


def trainer_filter(settings: Settings, metric: str) -> str:
    """This stack's trainer VMs (by their labels) for one metric."""
    stack = labels(settings)["stack"]
    return (
        f'resource.type = "gce_instance" AND metric.type = "{metric}" '
        f'AND metadata.user_labels.stack = "{stack}" AND metadata.user_labels.role = "{ROLE_LABEL["role"]}"'
    )


def endpoint_filter(service: str, metric: str, extra: str = "") -> str:
    return f'resource.type = "cloud_run_revision" AND resource.labels.service_name = "{service}" ' + (
        f'AND metric.type = "{metric}"{extra}'
    )


def trainer_watches(settings: Settings) -> list[Watch]:
    minutes = settings.trainer.idle_stop_minutes
    return [
        Watch(
            part="gpu-idle",
            title=f"{settings.stack}: trainer GPUs idle for {minutes} min",
            filter=trainer_filter(settings, GPU_METRIC),
            aligner="ALIGN_MEAN",
            reducer="REDUCE_MAX",
            group_by="resource.label.instance_id",
            comparison="COMPARISON_LT",
            threshold=GPU_IDLE_PERCENT,
            duration_s=minutes * 60,
            why=f"Every GPU of a trainer stayed under {GPU_IDLE_PERCENT}% for {minutes} minutes. The "
            "startup script's idle watchdog stops the VM at this point; if this stays open, it did not.",
        ),
        Watch(
            part="trainer-uptime",
            title=f"{settings.stack}: trainer running over {RUNAWAY_HOURS} h",
            filter=trainer_filter(settings, UPTIME_METRIC),
            aligner="ALIGN_MAX",
            reducer="REDUCE_MAX",
            group_by="resource.label.instance_id",
            comparison="COMPARISON_GT",
            threshold=RUNAWAY_HOURS * 3600,
            duration_s=0,
            why="A trainer VM has been up for longer than any expected run: check its launch log "
            "(/var/lib/cloud-ai/launch.log) and stop it if it is stuck.",
        ),
    ]


def endpoint_watches(settings: Settings, service: str) -> list[Watch]:
    alarms = settings.alarms
    return [
        Watch(
            part="fn-errors",
            title=f"{settings.stack}: endpoint 5xx over {alarms.error_rate_percent:g}%",
            filter=endpoint_filter(
                service, REQUESTS_METRIC, ' AND metric.labels.response_code_class = "5xx"'
            ),
            denominator=endpoint_filter(service, REQUESTS_METRIC),
            aligner="ALIGN_RATE",
            reducer="REDUCE_SUM",
            group_by="resource.label.service_name",
            comparison="COMPARISON_GT",
            threshold=alarms.error_rate_percent / 100,
            duration_s=300,
            why="The inference endpoint answers server errors: check its logs in Cloud Run.",
        ),
        Watch(
            part="fn-p99",
            title=f"{settings.stack}: endpoint p99 latency over {alarms.p99_latency_ms} ms",
            filter=endpoint_filter(service, LATENCY_METRIC),
            aligner="ALIGN_PERCENTILE_99",
            reducer="REDUCE_MAX",
            group_by="resource.label.service_name",
            comparison="COMPARISON_GT",
            threshold=alarms.p99_latency_ms,
            duration_s=300,
            why="Predictions are slow: cold starts, too little memory, or a larger model than before.",
        ),
    ]


def _aggregation(watch: Watch) -> dict[str, object]:
    return {
        "alignment_period": "60s" if watch.denominator is None else "300s",
        "per_series_aligner": watch.aligner,
        "cross_series_reducer": watch.reducer,
        "group_by_fields": [watch.group_by],
    }


def dashboard_json(settings: Settings, service: str) -> str:
    """Four charts: GPU utilization and uptime of the trainers, requests and p99 latency of the endpoint."""
    charts = [
        ("Trainer GPU utilization (%)", trainer_filter(settings, GPU_METRIC), "ALIGN_MEAN"),
        ("Trainer uptime (s)", trainer_filter(settings, UPTIME_METRIC), "ALIGN_MAX"),
        ("Endpoint requests (/s)", endpoint_filter(service, REQUESTS_METRIC), "ALIGN_RATE"),
        ("Endpoint p99 latency (ms)", endpoint_filter(service, LATENCY_METRIC), "ALIGN_PERCENTILE_99"),
    ]
    tiles = [
        {
            "xPos": (index % 2) * 24,
            "yPos": (index // 2) * 16,
            "width": 24,
            "height": 16,
            "widget": {
                "title": title,
                "xyChart": {
                    "dataSets": [
                        {
                            "plotType": "LINE",
                            "timeSeriesQuery": {
                                "timeSeriesFilter": {
                                    "filter": series,
                                    "aggregation": {"alignmentPeriod": "60s", "perSeriesAligner": aligner},
                                }
                            },
                        }
                    ]
                },
            },
        }
        for index, (title, series, aligner) in enumerate(charts)
    ]
    layout = {"columns": 48, "tiles": tiles}
    return json.dumps({"displayName": resource_name(settings, "dashboard"), "mosaicLayout": layout})


def dashboard_url(dashboard_id: str, project: str) -> str:
    """The console address of a dashboard (`projects/<number>/dashboards/<id>`)."""
    dashboard = dashboard_id.rsplit("/", 1)[-1]
    return f"https://console.cloud.google.com/monitoring/dashboards/custom/{dashboard}?project={project}"


class Alarms(pulumi.ComponentResource):
    """Everything that tells the owners something is off, or about to cost more than planned."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        endpoint: Endpoint,
        project: Project,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:gcp:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project_id = settings.location.project or ""
        service = endpoint.service.name
        self.channel = gcp.monitoring.NotificationChannel(
            name,
            type="email",
            display_name=f"cloud-ai {settings.stack} on-call",
            labels={"email_address": settings.alarms.email},
            user_labels=labels(settings),
            opts=child,
        )
        watches = trainer_watches(settings) + endpoint_watches(settings, SERVICE_SLOT)
        self.policies = [self._policy(name, settings, watch, service) for watch in watches]
        self.budget = self._budget(name, settings, project.number)
        self.dashboard = gcp.monitoring.Dashboard(
            name,
            dashboard_json=service.apply(lambda service_name: dashboard_json(settings, service_name)),
            opts=child,
        )
        self.topic: pulumi.Output[str] = self.channel.name
        self.dashboard_url: pulumi.Output[str] = self.dashboard.id.apply(
            lambda dashboard_id: dashboard_url(dashboard_id, project_id)
        )
        self.register_outputs({"topic": self.topic, "dashboard_url": self.dashboard_url})

    def _policy(
        self, name: str, settings: Settings, watch: Watch, service: pulumi.Output[str]
    ) -> gcp.monitoring.AlertPolicy:
        def named(text: str | None) -> pulumi.Output[str] | None:
            return None if text is None else service.apply(lambda s: text.replace(SERVICE_SLOT, s))

        threshold = gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
            filter=named(watch.filter),
            aggregations=[
                gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(**_aggregation(watch))
            ],
            denominator_filter=named(watch.denominator),
            denominator_aggregations=(
                [
                    gcp.monitoring.AlertPolicyConditionConditionThresholdDenominatorAggregationArgs(
                        **_aggregation(watch)
                    )
                ]
                if watch.denominator
                else None
            ),
            comparison=watch.comparison,
            threshold_value=watch.threshold,
            duration=f"{watch.duration_s}s",
            trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
        )
        return gcp.monitoring.AlertPolicy(
            f"{name}-{watch.part}",
            display_name=watch.title,
            combiner="OR",
            conditions=[
                gcp.monitoring.AlertPolicyConditionArgs(
                    display_name=watch.title, condition_threshold=threshold
                )
            ],
            notification_channels=[self.channel.name],
            documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                content=watch.why, mime_type="text/markdown"
            ),
            alert_strategy=gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close="86400s"),
            user_labels=labels(settings),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _budget(self, name: str, settings: Settings, number: pulumi.Output[str]) -> gcp.billing.Budget:
        """A monthly budget on this project, mailing the channel at 80% and 100% of actual spend."""
        return gcp.billing.Budget(
            name,
            billing_account=settings.alarms.billing_account or "",
            display_name=resource_name(settings, "budget"),
            amount=gcp.billing.BudgetAmountArgs(
                specified_amount=gcp.billing.BudgetAmountSpecifiedAmountArgs(
                    currency_code="USD", units=str(round(settings.alarms.monthly_budget_usd))
                )
            ),
            budget_filter=gcp.billing.BudgetBudgetFilterArgs(
                projects=[number.apply(lambda n: f"projects/{n}")], calendar_period="MONTH"
            ),
            threshold_rules=[
                gcp.billing.BudgetThresholdRuleArgs(threshold_percent=share, spend_basis="CURRENT_SPEND")
                for share in BUDGET_THRESHOLDS
            ],
            all_updates_rule=gcp.billing.BudgetAllUpdatesRuleArgs(
                monitoring_notification_channels=[self.channel.name]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

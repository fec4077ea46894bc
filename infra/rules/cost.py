"""Cost rules: GPU trainers stop when idle, the stack has a budget, GPUs and $/hour stay under the
stack's limits (cloud-ai:limits), and dev trains on spot capacity."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from infra.rules.compute import machine, machines, trainers
from infra.rules.model import Resource, StackFacts, Violation
from infra.rules.props import mappings, nested, strings

BUDGET_TYPES = {"aws:budgets/budget:Budget", "gcp:billing/budget:Budget", "azure-native:consumption:Budget"}
GPU_METRICS = ("gpu/utilization", "nvidia_smi_utilization_gpu", "GPU Utilization", "gpu_utilization")
LABEL_SELECTOR = re.compile(r'metadata\.user_labels\.([\w-]+)\s*=\s*"([^"]*)"')


def _aws_stops(alarm: Resource, trainer: Resource) -> bool:
    """A CloudWatch alarm whose action stops the EC2 instance it watches by InstanceId."""
    stops = any(":ec2:stop" in action for action in strings(alarm.props.get("alarmActions")))
    watched = strings(nested(alarm.props, "dimensions", "InstanceId"))
    return stops and bool(trainer.id) and trainer.id in watched


def _gcp_watches(policy: Resource, trainer: Resource) -> bool:
    """An alert policy on low GPU utilization whose label selectors pick this VM (the in-guest watchdog
    started by infra/launch.py stops it at the same threshold; the policy tells people if it did not)."""
    labels = trainer.props.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    for condition in mappings(policy.props.get("conditions")):
        threshold = condition.get("conditionThreshold")
        if not isinstance(threshold, Mapping) or threshold.get("comparison") != "COMPARISON_LT":
            continue
        query = str(threshold.get("filter", ""))
        selectors = LABEL_SELECTOR.findall(query)
        if (
            any(m in query for m in GPU_METRICS)
            and selectors
            and all(labels.get(k) == v for k, v in selectors)
        ):
            return True
    return False


def _azure_watches(alert: Resource, trainer: Resource) -> bool:
    """A metric alert scoped to this VM on low GPU utilization (the watchdog deallocates it; the alert says
    when it did not)."""
    if not trainer.id or trainer.id not in strings(alert.props.get("scopes")):
        return False
    criteria = mappings(nested(alert.props, "criteria", "allOf"))
    return any(
        c.get("operator") == "LessThan" and "gpu" in str(c.get("metricName", "")).lower() for c in criteria
    )


IDLE_WATCHERS: dict[str, Callable[[Resource, Resource], bool]] = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": _aws_stops,
    "gcp:monitoring/alertPolicy:AlertPolicy": _gcp_watches,
    "azure-native:monitor:MetricAlert": _azure_watches,
}


def idle_stop(resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
    """A forgotten GPU node costs dollars an hour: each one is stopped by an idle alarm or policy."""
    watchers = [(r, IDLE_WATCHERS[r.type]) for r in resources if r.type in IDLE_WATCHERS]
    return [
        Violation(
            "idle-stop",
            f"{t.resource.name}: no idle-stop alarm watches this GPU trainer: add one that stops it "
            f"(cloud-ai:trainer.idleStopMinutes)",
            t.resource.name,
        )
        for t in trainers(resources, facts.region)
        if not any(watches(watcher, t.resource) for watcher, watches in watchers)
    ]


def budget(resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
    """Every stack has a billing budget that e-mails before the month's spend runs away."""
    if any(r.type in BUDGET_TYPES for r in resources):
        return []
    return [
        Violation("budget", f"{facts.stack}: no budget: declare one from cloud-ai:alarms.monthlyBudgetUsd")
    ]


def gpu_limit(resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
    """The stack's GPUs stay within cloud-ai:limits.maxGpus."""
    total = sum(t.gpus for t in trainers(resources, facts.region))
    if total <= facts.max_gpus:
        return []
    fix = "fewer nodes or GPUs per node, or raise cloud-ai:limits.maxGpus"
    return [Violation("gpu-limit", f"{facts.stack}: {total} GPUs > limit {facts.max_gpus}: {fix}")]


def hourly_cost(resources: Sequence[Resource], region: str) -> tuple[float, list[str]]:
    """$/hour of every VM while running, and the machine types the catalog has no price for."""
    found = machines(resources, region)
    unpriced = sorted({m.machine_type for m in found if m.hourly_usd is None})
    return round(sum(m.hourly_usd or 0.0 for m in found), 4), unpriced


def hourly_cost_limit(resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
    """Running everything for an hour costs at most cloud-ai:limits.maxHourlyUsd (catalog prices)."""
    hourly, unpriced = hourly_cost(resources, facts.region)
    violations = [
        Violation(
            "hourly-cost-limit",
            f"{facts.stack}: no price for {machine_type}: add a row to infra/pricing/{facts.cloud}.csv",
        )
        for machine_type in unpriced
    ]
    if hourly > facts.max_hourly_usd:
        fix = "use spot, fewer or smaller nodes, or raise cloud-ai:limits.maxHourlyUsd"
        message = f"{facts.stack}: ${hourly:.2f}/hour > limit ${facts.max_hourly_usd:.2f}: {fix}"
        violations.append(Violation("hourly-cost-limit", message))
    return violations


def _on_demand_trainer(resource: Resource, facts: StackFacts) -> bool:
    found = machine(resource, facts.region)
    return found is not None and found.is_trainer and not found.spot


def spot_in_dev(resource: Resource, facts: StackFacts) -> Violation | None:
    """Dev trainers run on spot capacity (resumable checkpoints make interruptions cheap)."""
    if facts.is_prod or not _on_demand_trainer(resource, facts):
        return None
    fix = "on-demand GPU trainer in a dev stack: set cloud-ai:trainer.spot: true"
    return Violation("spot-in-dev", f"{resource.name}: {fix}", resource.name)


def spot_in_prod(resource: Resource, facts: StackFacts) -> Violation | None:
    """Prod may pay for on-demand capacity, but spot is usually 60-70% cheaper: say so."""
    if not facts.is_prod or not _on_demand_trainer(resource, facts):
        return None
    fix = "on-demand GPU trainer: spot costs about a third; set cloud-ai:trainer.spot: true if jobs resume"
    return Violation("spot-in-prod", f"{resource.name}: {fix}", resource.name)

"""Cost rules: GPU trainers stop when idle, the stack has a budget, GPUs and $/hour stay under the
stack's limits (cloud-ai:limits), and dev trains on spot capacity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.rules.compute import machine, machines, trainers
from infra.rules.model import Resource, StackFacts, Violation
from infra.rules.props import strings

BUDGET_TYPES = {"aws:budgets/budget:Budget", "gcp:billing/budget:Budget", "azure-native:consumption:Budget"}
# Resources that can stop an idle machine, and the marker in their properties that says they do.
IDLE_STOP_TYPES = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": ":ec2:stop",
    "azure-native:devtestlab:GlobalSchedule": "ComputeVmShutdownTask",
    "gcp:compute/resourcePolicy:ResourcePolicy": "vmStopSchedule",
}


def _texts(value: object) -> list[str]:
    """Every string anywhere inside a property value (keys of objects included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for key, item in value.items() for t in [str(key), *_texts(item)]]
    if isinstance(value, Sequence):
        return [t for item in value for t in _texts(item)]
    return []


def _stops(alarm: Resource) -> bool:
    marker = IDLE_STOP_TYPES.get(alarm.type)
    return marker is not None and any(marker in text for text in _texts(alarm.props))


def _watches(alarm: Resource, trainer: Resource) -> bool:
    """An alarm watches a trainer when its properties name the trainer's id, physical name or self link."""
    handles = {trainer.id, *strings(trainer.props.get("name")), *strings(trainer.props.get("selfLink"))} - {
        ""
    }
    return any(handle in text for text in _texts(alarm.props) for handle in handles)


def idle_stop(resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
    """A forgotten GPU node costs dollars an hour: each one is stopped by an idle alarm or policy."""
    stoppers = [r for r in resources if _stops(r)]
    return [
        Violation(
            "idle-stop",
            f"{t.resource.name}: no idle-stop alarm watches this GPU trainer: add one that stops it "
            f"(cloud-ai:trainer.idleStopMinutes)",
            t.resource.name,
        )
        for t in trainers(resources, facts.region)
        if not any(_watches(stopper, t.resource) for stopper in stoppers)
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

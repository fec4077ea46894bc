"""`cloud-ai plan`: what a stack would declare, whether the guardrails pass, and what it costs; offline.

Each stack file runs through the engine-free mock runtime (infra/mocks), exactly the program `pulumi
preview` runs, and its resources go through the same rules the policy pack enforces (infra/rules). The
exit status is non-zero when a stack's config is invalid or a mandatory rule fails, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from infra.config import ConfigError, settings_from
from infra.pricing import services, sources
from infra.rules import Resource, StackFacts, Verdict, evaluate
from infra.rules.compute import Machine, machines
from infra.rules.facts import facts_of
from workload.errors import UserError

STACK_TYPE = "pulumi:pulumi:Stack"
# Properties worth a glance in the resource tree, in the order they are shown (dots reach into objects).
KEY_PROPERTIES = (
    "instanceType",
    "machineType",
    "hardwareProfile.vmSize",
    "instanceMarketOptions.marketType",
    "scheduling.provisioningModel",
    "runtime",
    "memorySize",
    "authorizationType",
    "sku.name",
    "kind",
    "location",
    "availabilityZone",
    "zone",
)


@dataclass(frozen=True)
class Node:
    """One declared resource in the tree: its type, name, key properties and the components above it."""

    type: str
    name: str
    parents: tuple[str, ...]
    key: dict[str, Any]


@dataclass(frozen=True)
class MonthlyItem:
    item: str
    resources: int
    quantity: float
    unit: str
    usd: float
    basis: str


@dataclass(frozen=True)
class Cost:
    """Hourly while every trainer runs, and the always-on baseline per month (catalog prices)."""

    machines: tuple[Machine, ...]
    monthly: tuple[MonthlyItem, ...]
    sources: tuple[str, ...]

    @property
    def hourly_usd(self) -> float:
        return round(sum(m.hourly_usd or 0.0 for m in self.machines), 4)

    @property
    def monthly_usd(self) -> float:
        return round(sum(i.usd for i in self.monthly), 2)


@dataclass(frozen=True)
class StackPlan:
    stack: str
    seconds: float
    cloud: str = ""
    environment: str = ""
    error: str = ""
    nodes: tuple[Node, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    cost: Cost | None = field(default=None)

    @property
    def ok(self) -> bool:
        return not self.error and not any(v.blocks for v in self.verdicts)


def stack_files(names: Sequence[str], every: bool) -> list[Path]:
    """The stack files to plan: the named ones (names or paths), or all of stacks/ with --all."""
    from infra.mocks import STACKS, stack_file

    paths = sorted(STACKS.glob("Pulumi.*.yaml")) if every else [stack_file(n) for n in names]
    if not paths:
        raise UserError("name a stack (aws-dev, stacks/Pulumi.gcp-prod.yaml, ...) or pass --all")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no stack file {missing[0]}: stacks are stacks/Pulumi.<cloud>-<env>.yaml")
    return paths


def _key(props: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for path in KEY_PROPERTIES:
        value: Any = props
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str | int | float | bool):
            shown[path.rsplit(".", 1)[-1]] = value
    return shown


def _components(parents: Sequence[str]) -> tuple[str, ...]:
    """The component types above a resource, without the stack itself."""
    return tuple(p for p in parents if p != STACK_TYPE)


def monthly_baseline(cloud: str, resources: Sequence[Resource]) -> tuple[MonthlyItem, ...]:
    """services.csv items for every always-on resource the stack declares."""
    items = []
    for service in services(cloud):
        count = sum(1 for r in resources if r.type in service.types)
        if count:
            usd = round(service.monthly_usd(count), 2)
            items.append(
                MonthlyItem(service.item, count, service.quantity * count, service.unit, usd, service.basis)
            )
    return tuple(items)


def plan_stack(path: Path) -> StackPlan:
    """Validate, run and judge one stack file."""
    from infra.mocks import read_config, run_stack, stack_name

    started = time.perf_counter()
    name = stack_name(path)
    config = read_config(path)
    try:
        facts = facts_of(settings_from(config, name))
        run = run_stack(str(path), config)
    except ConfigError as error:
        return StackPlan(name, time.perf_counter() - started, error=str(error))
    inputs = [Resource(d.type, d.name, d.inputs, d.urn, d.id) for d in run.resources]
    outputs = [Resource(d.type, d.name, d.state, d.urn, d.id) for d in run.resources]
    nodes = tuple(Node(d.type, d.name, _components(d.parents), _key(d.inputs)) for d in run.resources)
    return StackPlan(
        stack=name,
        seconds=time.perf_counter() - started,
        cloud=facts.cloud,
        environment=facts.environment,
        nodes=nodes,
        verdicts=tuple(evaluate(inputs, outputs, facts)),
        cost=_cost(facts, inputs),
    )


def _cost(facts: StackFacts, inputs: Sequence[Resource]) -> Cost:
    return Cost(
        machines=tuple(machines(inputs, facts.region)),
        monthly=monthly_baseline(facts.cloud, inputs),
        sources=tuple(sources(facts.cloud)),
    )


# JSON --------------------------------------------------------------------------------------------


def as_json(plans: Sequence[StackPlan]) -> dict[str, Any]:
    return {"ok": all(p.ok for p in plans), "stacks": [_stack_json(p) for p in plans]}


def _stack_json(plan: StackPlan) -> dict[str, Any]:
    return {
        "stack": plan.stack,
        "ok": plan.ok,
        "cloud": plan.cloud,
        "environment": plan.environment,
        "error": plan.error or None,
        "seconds": round(plan.seconds, 2),
        "resources": [
            {"type": n.type, "name": n.name, "parents": list(n.parents), "key": n.key} for n in plan.nodes
        ],
        "rules": [
            {
                "name": v.rule.name,
                "level": v.rule.level,
                "passed": v.passed,
                "violations": [{"message": x.message, "resource": x.resource or None} for x in v.violations],
            }
            for v in plan.verdicts
        ],
        "cost": _cost_json(plan.cost) if plan.cost else None,
    }


def _cost_json(cost: Cost) -> dict[str, Any]:
    return {
        "hourlyUsd": cost.hourly_usd,
        "machines": [
            {
                "name": m.resource.name,
                "type": m.machine_type,
                "gpus": m.gpus,
                "spot": m.spot,
                "hourlyUsd": m.hourly_usd,
            }
            for m in cost.machines
        ],
        "monthlyBaselineUsd": cost.monthly_usd,
        "monthly": [vars(item) for item in cost.monthly],
        "sources": list(cost.sources),
    }


# Markdown ----------------------------------------------------------------------------------------


def as_markdown(plans: Sequence[StackPlan]) -> str:
    """A PR comment: one summary table, then per stack its failures, cost and (folded) resources."""
    lines = [
        "## cloud-ai plan",
        "",
        "| stack | verdict | mandatory failed | advisories | $/hour training | $/month baseline |",
        "|---|---|---|---|---|---|",
    ]
    for p in plans:
        failed = sum(v.blocks for v in p.verdicts)
        advisories = sum(not v.passed and not v.blocks for v in p.verdicts)
        hourly = f"{p.cost.hourly_usd:.2f}" if p.cost else "-"
        monthly = f"{p.cost.monthly_usd:.2f}" if p.cost else "-"
        verdict = "✅ pass" if p.ok else "❌ fail"
        lines.append(f"| {p.stack} | {verdict} | {failed} | {advisories} | {hourly} | {monthly} |")
    for p in plans:
        lines += ["", f"### {p.stack}", ""]
        lines += _stack_markdown(p)
    return "\n".join(lines) + "\n"


def _stack_markdown(plan: StackPlan) -> list[str]:
    if plan.error:
        return [f"**Config error:** `{plan.error}`"]
    lines = [f"{plan.cloud} · {plan.environment} · {len(plan.nodes)} resources", ""]
    for v in plan.verdicts:
        mark = "✅" if v.passed else ("❌" if v.blocks else "⚠️")
        lines.append(f"- {mark} `{v.rule.name}` ({v.rule.level}): {v.rule.description}")
        lines += [f"  - {x.message}" for x in v.violations]
    if plan.cost:
        lines += ["", *_cost_lines(plan.cost)]
    lines += ["", "<details><summary>Resources</summary>", "", "```"]
    lines += _tree_lines(plan.nodes)
    lines += ["```", "", "</details>"]
    return lines


def _cost_lines(cost: Cost) -> list[str]:
    lines = [f"**${cost.hourly_usd:.2f}/hour** while training:"]
    for m in cost.machines:
        price = f"${m.hourly_usd:.3f}/h" if m.hourly_usd is not None else "no price in the catalog"
        market = "spot" if m.spot else "on-demand"
        lines.append(f"- {m.resource.name}: {m.machine_type}, {m.gpus} GPU, {market}, {price}")
    lines.append(f"\n**${cost.monthly_usd:.2f}/month** always-on baseline:")
    lines += [
        f"- {i.item}: {i.quantity:g} {i.unit} (x{i.resources}; {i.basis}) = ${i.usd:.2f}"
        for i in cost.monthly
    ]
    lines.append(f"\nPrices: {'; '.join(cost.sources)}")
    return lines


def _tree_lines(nodes: Sequence[Node]) -> list[str]:
    """Resources nested under their components, one per line, indented two spaces a level."""
    lines = []
    for node in _tree_order(nodes):
        key = ", ".join(f"{k}={v}" for k, v in node.key.items())
        lines.append(f"{'  ' * len(node.parents)}{node.type} {node.name}" + (f"  ({key})" if key else ""))
    return lines


def _tree_order(nodes: Sequence[Node]) -> list[Node]:
    """Depth first: each component followed by the resources whose parent chain ends in it."""
    ordered: list[Node] = []

    def visit(chain: tuple[str, ...]) -> None:
        for node in nodes:
            if node.parents == chain and node not in ordered:
                ordered.append(node)
                visit((*chain, node.type))

    visit(())
    return ordered + [n for n in nodes if n not in ordered]


# Table (rich) ------------------------------------------------------------------------------------


def as_table(plans: Sequence[StackPlan]) -> str:
    """Readable in a terminal: the tree, the rules and the cost of each stack."""
    from rich.console import Console
    from rich.table import Table
    from rich.tree import Tree

    buffer = StringIO()
    console = Console(file=buffer, width=120, force_terminal=False)
    for plan in plans:
        title = f"{plan.stack}: {'PASS' if plan.ok else 'FAIL'} ({plan.seconds:.1f} s)"
        console.rule(title)
        if plan.error:
            console.print(f"config error: {plan.error}", markup=False)
            continue
        tree = Tree(f"{plan.cloud} · {plan.environment}")
        branches: dict[tuple[str, ...], Tree] = {(): tree}
        for node in _tree_order(plan.nodes):
            key = ", ".join(f"{k}={v}" for k, v in node.key.items())
            parent = branches.get(node.parents, tree)
            branches[(*node.parents, node.type)] = parent.add(f"{node.type} {node.name} {key}".strip())
        console.print(tree, markup=False)
        rules = Table("rule", "level", "verdict", "how to fix")
        for v in plan.verdicts:
            verdict = "pass" if v.passed else ("FAIL" if v.blocks else "warn")
            rules.add_row(v.rule.name, v.rule.level, verdict, "\n".join(x.message for x in v.violations))
        console.print(rules)
        if plan.cost:
            for line in _cost_lines(plan.cost):
                console.print(line.replace("**", ""), markup=False)
    return buffer.getvalue()


def command(args: argparse.Namespace) -> int:
    """Plan the stacks ARGS name; 1 when any has a config error or fails a mandatory rule."""
    plans = [plan_stack(path) for path in stack_files(args.stacks, args.all)]
    if args.format == "json":
        print(json.dumps(as_json(plans), indent=2))
    elif args.format == "markdown":
        print(as_markdown(plans), end="")
    else:
        print(as_table(plans), end="")
    return 0 if all(p.ok for p in plans) else 1

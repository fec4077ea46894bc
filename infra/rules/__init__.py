"""Guardrails as pure functions, shared by the CrossGuard policy pack (policy/) and `cloud-ai plan`.

A resource rule looks at one resource's type and properties, a stack rule at every resource of the
stack; both also get the stack's facts (environment, limits, region). No pulumi import here: the
policy pack's virtualenv has pulumi-policy and its dependencies only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infra.rules import cost, hygiene, security
from infra.rules.model import Level, Resource, Rule, StackFacts, Violation

__all__ = ["RULES", "Level", "Resource", "Rule", "StackFacts", "Verdict", "Violation", "evaluate", "rule"]

RULES: tuple[Rule, ...] = (
    Rule(
        "storage-private",
        "Buckets and storage accounts block public access",
        "mandatory",
        resource_check=security.storage_private,
    ),
    Rule(
        "storage-encrypted",
        "Storage encrypts at rest and accepts HTTPS with TLS 1.2+ only",
        "mandatory",
        resource_check=security.storage_encrypted,
    ),
    Rule(
        "s3-buckets-guarded",
        "Every S3 bucket has a public access block and default encryption",
        "mandatory",
        stack_check=security.s3_buckets_guarded,
    ),
    Rule(
        "no-open-admin-ports",
        "No SSH/RDP ingress from 0.0.0.0/0 or ::/0",
        "mandatory",
        resource_check=security.no_open_admin_ports,
    ),
    Rule(
        "imdsv2-required",
        "EC2 instances require IMDSv2 session tokens",
        "mandatory",
        resource_check=security.imdsv2_required,
    ),
    Rule(
        "disks-encrypted",
        "EBS volumes are encrypted (GCP and Azure disks always are)",
        "mandatory",
        resource_check=security.disks_encrypted,
    ),
    Rule(
        "no-wildcard-admin",
        "No IAM grant of every action on every resource",
        "mandatory",
        resource_check=security.no_wildcard_admin,
    ),
    Rule(
        "no-public-members",
        "No IAM role for allUsers/allAuthenticatedUsers but function invoke",
        "mandatory",
        resource_check=security.no_public_members,
    ),
    Rule(
        "endpoint-authenticated",
        "Function endpoints authenticate callers unless public in a dev stack",
        "mandatory",
        resource_check=security.endpoint_authenticated,
    ),
    Rule(
        "idle-stop", "Every GPU trainer is stopped by an idle alarm", "mandatory", stack_check=cost.idle_stop
    ),
    Rule("budget", "The stack has a billing budget", "mandatory", stack_check=cost.budget),
    Rule(
        "gpu-limit",
        "The stack's GPUs stay within cloud-ai:limits.maxGpus",
        "mandatory",
        stack_check=cost.gpu_limit,
    ),
    Rule(
        "hourly-cost-limit",
        "The stack's $/hour stays within cloud-ai:limits.maxHourlyUsd",
        "mandatory",
        stack_check=cost.hourly_cost_limit,
    ),
    Rule("spot-in-dev", "Dev stacks train on spot capacity", "mandatory", resource_check=cost.spot_in_dev),
    Rule(
        "spot-in-prod",
        "Prod stacks are told what spot would save",
        "advisory",
        resource_check=cost.spot_in_prod,
    ),
    Rule(
        "common-tags",
        "Taggable resources carry project, stack, owner, cost-center, managed-by",
        "mandatory",
        resource_check=hygiene.common_tags,
    ),
)


def rule(name: str) -> Rule:
    """The registered rule called NAME."""
    return next(r for r in RULES if r.name == name)


@dataclass(frozen=True)
class Verdict:
    """One rule's outcome on one stack."""

    rule: Rule
    violations: tuple[Violation, ...]

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def blocks(self) -> bool:
        """A failed mandatory rule stops `pulumi up` (and makes `cloud-ai plan` exit non-zero)."""
        return not self.passed and self.rule.level == "mandatory"


def evaluate(inputs: Sequence[Resource], outputs: Sequence[Resource], facts: StackFacts) -> list[Verdict]:
    """Every rule's verdict on a stack, in registry order.

    As in CrossGuard, resource rules see each resource's inputs and stack rules its outputs (which hold
    the computed ids, names and links that tie one resource to another).
    """
    return [Verdict(r, tuple(r.evaluate(inputs if r.kind == "resource" else outputs, facts))) for r in RULES]

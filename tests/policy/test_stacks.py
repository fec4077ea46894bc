"""The rules on the real stacks: all six pass every mandatory rule, and each rule fires on a stack once
the property it guards is broken, so no rule passes merely because it never sees a resource it knows."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

from infra.config import settings_from
from infra.mocks import run_stack
from infra.rules import Resource, StackFacts, evaluate, rule
from infra.rules.facts import facts_of

STACK_NAMES = ("aws-dev", "aws-prod", "gcp-dev", "gcp-prod", "azure-dev", "azure-prod")
WILDCARD = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
OWNER_ROLE = "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
RDP_FROM_ANYWHERE = {
    "direction": "Inbound",
    "access": "Allow",
    "protocol": "Tcp",
    "sourceAddressPrefix": "*",
    "destinationPortRange": "3389",
}
ANONYMOUS = {"appSettings": [{"name": "FUNCTION_AUTH_LEVEL", "value": "anonymous"}]}
TAGS_WITHOUT_OWNER = {"project": "cloud-ai", "stack": "x", "cost-center": "ml", "managed-by": "pulumi"}

Stack = tuple[list[Resource], list[Resource], StackFacts]


@cache
def stack(name: str) -> Stack:
    """(inputs, outputs, facts) of a stack file run under the mocks."""
    run = run_stack(name)
    inputs = [Resource(d.type, d.name, d.inputs, d.urn, d.id) for d in run.resources]
    outputs = [Resource(d.type, d.name, d.state, d.urn, d.id) for d in run.resources]
    return inputs, outputs, facts_of(settings_from(run.config, name))


@pytest.mark.parametrize("name", STACK_NAMES)
def test_stack_passes_every_mandatory_rule(name: str) -> None:
    inputs, outputs, facts = stack(name)
    failed = {
        v.rule.name: [x.message for x in v.violations] for v in evaluate(inputs, outputs, facts) if v.blocks
    }
    assert failed == {}


def edit(resources: list[Resource], type_: str, change: dict[str, Any] | None) -> list[Resource]:
    """The first TYPE resource with CHANGE merged into its props (None: every TYPE resource dropped)."""
    if change is None:
        return [r for r in resources if r.type != type_]
    first = next(i for i, r in enumerate(resources) if r.type == type_)
    changed = replace(resources[first], props={**resources[first].props, **change})
    return [*resources[:first], changed, *resources[first + 1 :]]


# (stack, rule, resource type, property change or None to drop them all)
BREAKS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    (
        "aws-dev",
        "storage-private",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {"blockPublicAcls": False},
    ),
    (
        "aws-dev",
        "storage-encrypted",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"rules": []},
    ),
    ("aws-dev", "s3-buckets-guarded", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", None),
    (
        "aws-dev",
        "no-open-admin-ports",
        "aws:ec2/securityGroup:SecurityGroup",
        {"ingress": [{"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}]},
    ),
    (
        "aws-dev",
        "imdsv2-required",
        "aws:ec2/instance:Instance",
        {"metadataOptions": {"httpTokens": "optional"}},
    ),
    ("aws-prod", "disks-encrypted", "aws:ec2/instance:Instance", {"rootBlockDevice": {"encrypted": False}}),
    ("aws-dev", "no-wildcard-admin", "aws:iam/rolePolicy:RolePolicy", {"policy": WILDCARD}),
    (
        "aws-prod",
        "endpoint-authenticated",
        "aws:lambda/functionUrl:FunctionUrl",
        {"authorizationType": "NONE"},
    ),
    ("aws-dev", "idle-stop", "aws:cloudwatch/metricAlarm:MetricAlarm", None),
    ("aws-prod", "budget", "aws:budgets/budget:Budget", None),
    ("aws-dev", "spot-in-dev", "aws:ec2/instance:Instance", {"instanceMarketOptions": None}),
    ("aws-dev", "common-tags", "aws:s3/bucket:Bucket", {"tags": TAGS_WITHOUT_OWNER}),
    ("gcp-dev", "storage-private", "gcp:storage/bucket:Bucket", {"publicAccessPrevention": "inherited"}),
    ("gcp-prod", "no-open-admin-ports", "gcp:compute/firewall:Firewall", {"sourceRanges": ["0.0.0.0/0"]}),
    ("gcp-dev", "no-wildcard-admin", "gcp:projects/iAMMember:IAMMember", {"role": "roles/editor"}),
    ("gcp-dev", "no-public-members", "gcp:storage/bucketIAMMember:BucketIAMMember", {"member": "allUsers"}),
    ("gcp-prod", "endpoint-authenticated", "gcp:cloudrunv2/service:Service", {"invokerIamDisabled": True}),
    ("gcp-prod", "idle-stop", "gcp:monitoring/alertPolicy:AlertPolicy", None),
    ("gcp-dev", "budget", "gcp:billing/budget:Budget", None),
    (
        "gcp-dev",
        "spot-in-dev",
        "gcp:compute/instance:Instance",
        {"scheduling": {"provisioningModel": "STANDARD"}},
    ),
    ("gcp-prod", "common-tags", "gcp:storage/bucket:Bucket", {"labels": TAGS_WITHOUT_OWNER}),
    ("azure-dev", "storage-private", "azure-native:storage:StorageAccount", {"allowBlobPublicAccess": True}),
    (
        "azure-prod",
        "storage-encrypted",
        "azure-native:storage:StorageAccount",
        {"minimumTlsVersion": "TLS1_0"},
    ),
    (
        "azure-dev",
        "no-open-admin-ports",
        "azure-native:network:NetworkSecurityGroup",
        {"securityRules": [RDP_FROM_ANYWHERE]},
    ),
    (
        "azure-dev",
        "no-wildcard-admin",
        "azure-native:authorization:RoleAssignment",
        {"roleDefinitionId": OWNER_ROLE},
    ),
    ("azure-prod", "endpoint-authenticated", "azure-native:web:WebApp", {"siteConfig": ANONYMOUS}),
    ("azure-dev", "idle-stop", "azure-native:monitor:MetricAlert", None),
    ("azure-prod", "budget", "azure-native:consumption:Budget", None),
    ("azure-dev", "spot-in-dev", "azure-native:compute:VirtualMachine", {"priority": "Regular"}),
    ("azure-dev", "common-tags", "azure-native:storage:StorageAccount", {"tags": TAGS_WITHOUT_OWNER}),
]


@pytest.mark.parametrize(
    ("name", "rule_name", "type_", "change"), BREAKS, ids=[f"{b[0]}-{b[1]}" for b in BREAKS]
)
def test_rule_fires_on_a_broken_stack(
    name: str, rule_name: str, type_: str, change: dict[str, Any] | None
) -> None:
    inputs, outputs, facts = stack(name)
    checked = rule(rule_name)
    broken = edit(inputs if checked.kind == "resource" else outputs, type_, change)
    assert checked.evaluate(broken, facts)


@pytest.mark.parametrize(
    ("name", "limit"),
    [("aws-prod", 1), ("gcp-prod", 3), ("azure-prod", 1)],
)
def test_gpu_limit_counts_the_stacks_gpus(name: str, limit: int) -> None:
    _, outputs, facts = stack(name)
    assert rule("gpu-limit").evaluate(outputs, replace(facts, max_gpus=limit))


@pytest.mark.parametrize("name", ["aws-prod", "gcp-prod", "azure-prod"])
def test_hourly_cost_limit_prices_the_stacks_trainers(name: str) -> None:
    _, outputs, facts = stack(name)
    assert rule("hourly-cost-limit").evaluate(outputs, replace(facts, max_hourly_usd=1.0))

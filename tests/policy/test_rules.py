"""Each rule against a resource set that breaks it (and nothing else), plus the edge cases of the checks."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml

from infra.config import settings_from
from infra.rules import RULES, Resource, evaluate, rule
from infra.rules.hygiene import COMMON_TAGS
from tests.policy.rulecases import FACTS, RULE_FIXTURES, STACKS, load


def failing(resources: list[Resource], facts=FACTS) -> set[str]:
    return {v.rule.name for v in evaluate(resources, resources, facts) if not v.passed}


def test_every_rule_has_a_negative_fixture_and_nothing_else_does() -> None:
    assert {p.stem for p in RULE_FIXTURES.glob("*.yaml")} == {r.name for r in RULES}


@pytest.mark.parametrize("name", [r.name for r in RULES])
def test_fixture_breaks_exactly_its_rule(name: str) -> None:
    resources, facts = load(name)
    assert failing(resources, facts) == {name}
    violations = rule(name).evaluate(resources, facts)
    assert violations and all(v.rule == name and ": " in v.message for v in violations)


def test_rule_names_are_unique_and_levels_known() -> None:
    assert len({r.name for r in RULES}) == len(RULES)
    assert {r.level for r in RULES} == {"mandatory", "advisory"}


def test_common_tags_are_the_tags_settings_apply() -> None:
    config = yaml.safe_load((STACKS / "Pulumi.gcp-dev.yaml").read_text())["config"]
    assert set(settings_from(config, "gcp-dev").tags) == set(COMMON_TAGS)


def sg(ingress: list[dict]) -> Resource:
    return Resource("aws:ec2/securityGroup:SecurityGroup", "sg", {"ingress": ingress})


@pytest.mark.parametrize(
    ("resource", "opened"),
    [
        (sg([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}]), True),
        (sg([{"protocol": "tcp", "fromPort": 3000, "toPort": 4000, "ipv6CidrBlocks": ["::/0"]}]), True),
        (sg([{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]), True),
        (sg([{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]), False),
        (sg([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]}]), False),
        (sg([{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]), False),
        (
            Resource(
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                "r",
                {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
            ),
            True,
        ),
        (
            Resource(
                "gcp:compute/firewall:Firewall",
                "fw",
                {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "all"}]},
            ),
            True,
        ),
        (
            Resource(
                "gcp:compute/firewall:Firewall",
                "fw",
                {"sourceServiceAccounts": ["t@p.iam"], "allows": [{"protocol": "tcp"}]},
            ),
            False,
        ),
        (
            Resource(
                "azure-native:network:NetworkSecurityGroup",
                "nsg",
                {
                    "securityRules": [
                        {
                            "direction": "Inbound",
                            "access": "Allow",
                            "protocol": "Tcp",
                            "sourceAddressPrefix": "Internet",
                            "destinationPortRanges": ["3000-4000"],
                        }
                    ]
                },
            ),
            True,
        ),
        (
            Resource(
                "azure-native:network:SecurityRule",
                "rule",
                {
                    "direction": "Inbound",
                    "access": "Deny",
                    "protocol": "*",
                    "sourceAddressPrefix": "*",
                    "destinationPortRange": "*",
                },
            ),
            False,
        ),
    ],
)
def test_admin_ports_open_to_the_world(resource: Resource, opened: bool) -> None:
    assert (rule("no-open-admin-ports").evaluate([resource], FACTS) != []) is opened


@pytest.mark.parametrize(
    ("resource", "admin"),
    [
        (
            Resource(
                "aws:iam/policy:Policy",
                "p",
                {
                    "policy": json.dumps(
                        {"Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}]}
                    )
                },
            ),
            True,
        ),
        (
            Resource(
                "aws:iam/policy:Policy",
                "p",
                {
                    "policy": json.dumps(
                        {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
                    )
                },
            ),
            False,
        ),
        (
            Resource(
                "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "a",
                {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            ),
            True,
        ),
        (Resource("gcp:projects/iAMMember:IAMMember", "m", {"role": "roles/editor", "member": "sa"}), True),
        (Resource("gcp:projects/iAMMember:IAMMember", "m", {"role": "roles/logging.logWriter"}), False),
        (
            Resource(
                "azure-native:authorization:RoleAssignment",
                "ra",
                {
                    "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                    "b24988ac-6180-42a0-ab88-20f7382dd24c"
                },
            ),
            True,
        ),
    ],
)
def test_wildcard_admin_grants(resource: Resource, admin: bool) -> None:
    assert (rule("no-wildcard-admin").evaluate([resource], FACTS) != []) is admin


def test_public_endpoint_is_allowed_only_when_asked_for_in_dev() -> None:
    url = Resource("aws:lambda/functionUrl:FunctionUrl", "fn", {"authorizationType": "NONE"})
    check = rule("endpoint-authenticated")
    assert check.evaluate([url], replace(FACTS, endpoint_public=True)) == []
    prod = check.evaluate([url], replace(FACTS, endpoint_public=True, environment="prod"))
    assert prod and "prod endpoints must authenticate" in prod[0].message


def test_public_invoker_on_cloud_run_is_an_endpoint_matter_not_a_public_member() -> None:
    member = Resource(
        "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        "invoker",
        {"role": "roles/run.invoker", "member": "allUsers"},
    )
    assert failing([member, Resource("gcp:billing/budget:Budget", "b", {})]) == {"endpoint-authenticated"}


def test_an_unpriced_machine_type_is_reported_not_ignored() -> None:
    vm = Resource("azure-native:compute:VirtualMachine", "vm", {"hardwareProfile": {"vmSize": "Standard_X1"}})
    violations = rule("hourly-cost-limit").evaluate([vm], FACTS)
    assert [v.message for v in violations] == [
        "fixture: no price for Standard_X1: add a row to infra/pricing/aws.csv"
    ]


def test_an_alarm_on_another_instance_does_not_count_as_idle_stop() -> None:
    resources, facts = load("hourly-cost-limit")
    moved = [
        replace(r, props={**r.props, "dimensions": {"InstanceId": "i-other"}})
        if r.name == "gpu-idle-0"
        else r
        for r in resources
    ]
    assert [v.resource for v in rule("idle-stop").evaluate(moved, facts)] == ["trainer-0"]

"""AWS trainers: spot, IMDSv2, encrypted disks, no inbound from outside, least-privilege IAM, user data."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from infra.aws.trainer import first_zone
from infra.mocks import Declared
from tests.infra.conftest import stack

INSTANCE = "aws:ec2/instance:Instance"
STACKS = ["aws-dev", "aws-prod"]


def instances(name: str) -> list[Declared]:
    return sorted(stack(name).of_type(INSTANCE), key=lambda r: r.name)


def trainer_policy(name: str) -> dict[str, Any]:
    (policy,) = [r for r in stack(name).of_type("aws:iam/rolePolicy:RolePolicy") if "trainer" in r.name]
    document: dict[str, Any] = json.loads(policy.inputs["policy"])
    return document


def statements(name: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in trainer_policy(name)["Statement"]}


def test_dev_node_is_a_persistent_spot_instance_that_stops_on_interruption() -> None:
    (node,) = instances("aws-dev")

    assert node.inputs["instanceType"] == "g5.xlarge"
    assert node.inputs["instanceMarketOptions"] == {
        "marketType": "spot",
        "spotOptions": {"spotInstanceType": "persistent", "instanceInterruptionBehavior": "stop"},
    }
    assert "placementGroup" not in node.inputs


def test_prod_nodes_are_on_demand_in_one_cluster_placement_group() -> None:
    (group,) = stack("aws-prod").of_type("aws:ec2/placementGroup:PlacementGroup")

    assert group.inputs["strategy"] == "cluster"
    for node in instances("aws-prod"):
        assert node.inputs["instanceType"] == "g5.12xlarge"
        assert "instanceMarketOptions" not in node.inputs
        assert node.inputs["placementGroup"] == group.state["name"]


@pytest.mark.parametrize("name", STACKS)
def test_nodes_are_hardened(name: str) -> None:
    disk = {"aws-dev": 200, "aws-prod": 500}[name]
    for node in instances(name):
        assert node.inputs["metadataOptions"]["httpTokens"] == "required"
        assert node.inputs["rootBlockDevice"] == {
            "volumeSize": disk,
            "volumeType": "gp3",
            "encrypted": True,
            "deleteOnTermination": True,
        }
        assert node.inputs["monitoring"] is True
        assert node.inputs["instanceInitiatedShutdownBehavior"] == "stop"
        assert "keyName" not in node.inputs
        assert "associatePublicIpAddress" not in node.inputs
        assert node.inputs["userDataReplaceOnChange"] is True


@pytest.mark.parametrize("name", STACKS)
def test_nodes_boot_the_deep_learning_ami(name: str) -> None:
    for node in instances(name):
        assert node.inputs["ami"].startswith("ami-")


@pulumi.runtime.test
def test_instances_require_imdsv2_and_sit_on_the_fixed_worker_addresses() -> pulumi.Output[None]:
    trainers = stack("aws-prod").program["deployment"].trainer

    def check(values: list[Any]) -> None:
        options, ips = values[:2], values[2:]
        assert all(o["http_tokens"] == "required" for o in options)
        assert ips == ["10.42.1.10", "10.42.1.11"]

    return pulumi.Output.all(
        *[i.metadata_options for i in trainers.instances], *[i.private_ip for i in trainers.instances]
    ).apply(check)


@pytest.mark.parametrize("name", STACKS)
def test_user_data_runs_the_train_image_by_digest_with_each_nodes_tf_config(name: str) -> None:
    run = stack(name)
    train_image = run.outputs["images"]["train"]
    nodes = instances(name)
    workers = [f"10.42.1.{10 + i}:12345" for i in range(len(nodes))]
    for index, node in enumerate(nodes):
        script = node.inputs["userData"]
        assert script.startswith("#!/bin/bash\n")
        assert f"IMAGE={train_image}\n" in script
        assert "REGISTRY=123456789012.dkr.ecr.us-east-1.amazonaws.com\n" in script
        assert f"export MODEL_STORE={run.outputs['storeUrl']}\n" in script
        assert "aws ecr get-login-password" in script
        assert "IDLE_STOP_MINUTES=" + str(run.config["cloud-ai:trainer"]["idleStopMinutes"]) in script
        if len(nodes) == 1:
            assert "export TF_CONFIG=''\n" in script
        else:
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            assert f"export TF_CONFIG='{json.dumps(tf_config, separators=(',', ':'))}'\n" in script


@pytest.mark.parametrize("name", STACKS)
def test_network_is_private_with_nat_egress_and_an_s3_gateway(name: str) -> None:
    run = stack(name)
    subnets = {r.name.rsplit("-", 1)[-1]: r for r in run.of_type("aws:ec2/subnet:Subnet")}
    (nat,) = run.of_type("aws:ec2/natGateway:NatGateway")
    (endpoint,) = run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    routes = {r.name.rsplit("-", 1)[-1]: r for r in run.of_type("aws:ec2/routeTable:RouteTable")}

    assert subnets["private"].inputs["cidrBlock"] == "10.42.1.0/24"
    assert subnets["private"].inputs["mapPublicIpOnLaunch"] is False
    assert subnets["private"].inputs["availabilityZone"] == "us-east-1a"
    assert nat.inputs["subnetId"] == subnets["public"].id
    assert routes["private"].inputs["routes"] == [{"cidrBlock": "0.0.0.0/0", "natGatewayId": nat.id}]
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    assert endpoint.inputs["routeTableIds"] == [routes["private"].id]
    for node in instances(name):
        assert node.inputs["subnetId"] == subnets["private"].id


@pytest.mark.parametrize("name", STACKS)
def test_security_group_lets_only_workers_in(name: str) -> None:
    (group,) = stack(name).of_type("aws:ec2/securityGroup:SecurityGroup")

    assert group.inputs["ingress"] == [
        {"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True, "description": "workers"}
    ]
    assert all("0.0.0.0/0" not in rule.get("cidrBlocks", []) for rule in group.inputs["ingress"])
    open_egress = [r for r in group.inputs["egress"] if "0.0.0.0/0" in r.get("cidrBlocks", [])]
    assert sorted((r["protocol"], r["fromPort"], r["toPort"]) for r in open_egress) == [
        ("tcp", 80, 80),
        ("tcp", 443, 443),
    ]


@pytest.mark.parametrize("name", STACKS)
def test_instance_role_is_ssm_managed_and_scoped_to_the_store_prefixes(name: str) -> None:
    run = stack(name)
    bucket = run.outputs["storeUrl"].removeprefix("s3://")
    arn = f"arn:aws:s3:::{bucket}"
    model = run.config["cloud-ai:workload"]["modelName"]
    dataset = run.config["cloud-ai:workload"]["dataset"]
    found = statements(name)
    (attachment,) = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")

    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert found["ReadDataset"]["Action"] == "s3:GetObject"
    assert found["ReadDataset"]["Resource"] == f"{arn}/datasets/{dataset}/*"
    assert found["WriteModelAndCheckpoints"]["Resource"] == [
        f"{arn}/models/{model}/*",
        f"{arn}/checkpoints/{model}/*",
    ]
    assert "s3:PutObject" in found["WriteModelAndCheckpoints"]["Action"]
    assert found["ListOwnPrefixes"]["Resource"] == arn
    assert found["ListOwnPrefixes"]["Condition"]["StringLike"]["s3:prefix"] == [
        f"datasets/{dataset}",
        f"datasets/{dataset}/*",
        f"models/{model}",
        f"models/{model}/*",
        f"checkpoints/{model}",
        f"checkpoints/{model}/*",
    ]
    repository = run.of_type("aws:ecr/repository:Repository")[0].state["arn"]
    assert found["PullTrainImage"]["Resource"] == repository
    assert found["RegistryLogin"] == {
        "Sid": "RegistryLogin",
        "Effect": "Allow",
        "Action": "ecr:GetAuthorizationToken",
        "Resource": "*",
    }
    assert found["PutGpuMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "CWAgent"}}


@pytest.mark.parametrize("name", STACKS)
def test_no_statement_allows_everything_or_any_action_on_any_resource(name: str) -> None:
    for statement in trainer_policy(name)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in actions), statement
        if statement["Resource"] == "*":
            assert actions in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"]), statement


def test_first_zone_is_stable_and_refuses_none() -> None:
    assert first_zone(["us-east-1c", "us-east-1a"]) == "us-east-1a"
    with pytest.raises(ValueError, match="no availability zone"):
        first_zone([])

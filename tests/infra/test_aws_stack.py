"""The AWS stacks as a whole: what each declares, how many resources, their tags and the stack outputs."""

from __future__ import annotations

import importlib
import inspect
import re
from collections import Counter

import pulumi
import pytest

from infra.mocks import StackRun
from tests.infra.conftest import stack

# Resource counts by type: a resource silently dropped (an unknown computed output) or added fails here.
COMMON = {
    "cloud-ai:aws:ModelStore": 1,
    "aws:s3/bucket:Bucket": 1,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
    "aws:s3/bucketVersioning:BucketVersioning": 1,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
    "aws:s3/bucketPolicy:BucketPolicy": 1,
    "cloud-ai:aws:Registry": 1,
    "aws:ecr/repository:Repository": 1,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": 1,
    "docker-build:index:Image": 3,
    "cloud-ai:aws:Trainers": 1,
    "cloud-ai:aws:TrainerNetwork": 1,
    "aws:ec2/vpc:Vpc": 1,
    "aws:ec2/subnet:Subnet": 2,
    "aws:ec2/internetGateway:InternetGateway": 1,
    "aws:ec2/eip:Eip": 1,
    "aws:ec2/natGateway:NatGateway": 1,
    "aws:ec2/routeTable:RouteTable": 2,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": 2,
    "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
    "aws:ec2/securityGroup:SecurityGroup": 1,
    "aws:iam/role:Role": 2,
    "aws:iam/rolePolicy:RolePolicy": 2,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 1,
    "aws:iam/instanceProfile:InstanceProfile": 1,
    "cloud-ai:aws:Endpoint": 1,
    "aws:cloudwatch/logGroup:LogGroup": 1,
    "aws:ecr/repositoryPolicy:RepositoryPolicy": 1,
    "aws:lambda/function:Function": 1,
    "aws:lambda/functionUrl:FunctionUrl": 1,
    "cloud-ai:aws:Alarms": 1,
    "aws:sns/topic:Topic": 1,
    "aws:sns/topicSubscription:TopicSubscription": 1,
    "aws:budgets/budget:Budget": 1,
    "aws:cloudwatch/dashboard:Dashboard": 1,
}
EXPECTED = {
    # one spot node: instance, GPU-idle and system-check alarms; endpoint: errors, throttles, p99
    "aws-dev": {**COMMON, "aws:ec2/instance:Instance": 1, "aws:cloudwatch/metricAlarm:MetricAlarm": 2 + 3},
    # two on-demand nodes in a cluster placement group
    "aws-prod": {
        **COMMON,
        "aws:ec2/instance:Instance": 2,
        "aws:ec2/placementGroup:PlacementGroup": 1,
        "aws:cloudwatch/metricAlarm:MetricAlarm": 4 + 3,
    },
}
TOTALS = {"aws-dev": 49, "aws-prod": 53}
STACKS = list(EXPECTED)


@pytest.mark.parametrize("name", STACKS)
def test_declares_exactly_the_expected_resources(name: str) -> None:
    run = stack(name)

    assert dict(Counter(r.type for r in run.resources)) == EXPECTED[name]
    assert len(run.resources) == TOTALS[name] == sum(EXPECTED[name].values())


@pytest.mark.parametrize("name", STACKS)
def test_every_resource_sits_in_its_component(name: str) -> None:
    components = {"ModelStore", "Registry", "Trainers", "Endpoint", "Alarms"}
    for resource in stack(name).resources:
        if resource.type.startswith("cloud-ai:aws:") and resource.type.split(":")[-1] in components:
            assert resource.parents == ["pulumi:pulumi:Stack"], resource.name
        else:
            assert resource.parents and resource.parents[0].startswith("cloud-ai:aws:"), resource.name


def _accepts_tags(type_token: str) -> bool:
    package, module_path, class_name = type_token.split(":")
    if package != "aws":
        return False
    module = module_path.split("/")[0]
    sdk = importlib.import_module(f"pulumi_aws.{module}_" if module == "lambda" else f"pulumi_aws.{module}")
    return "tags" in inspect.signature(getattr(sdk, class_name)._internal_init).parameters


@pytest.mark.parametrize("name", STACKS)
def test_every_taggable_resource_carries_the_common_tags(name: str) -> None:
    run = stack(name)
    tags = {
        "project": "cloud-ai",
        "stack": name,
        "owner": "ml-platform@example.com",
        "cost-center": run.config["cloud-ai:costCenter"],
        "managed-by": "pulumi",
    }
    taggable = [r for r in run.resources if _accepts_tags(r.type)]

    assert len(taggable) > 20
    for resource in taggable:
        assert tags.items() <= (resource.inputs.get("tags") or {}).items(), resource.name


@pytest.mark.parametrize("name", STACKS)
def test_outputs_are_exported_with_their_real_shapes(name: str) -> None:
    run: StackRun = stack(name)
    outputs = run.outputs
    nodes = len(run.of_type("aws:ec2/instance:Instance"))

    assert re.fullmatch(r"s3://cloud-ai-" + name + r"-store-\w+", outputs["storeUrl"])
    assert outputs["registryUrl"] == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/cloud-ai-{name}-registry"
    assert set(outputs["images"]) == {"train", "serve", "function"}
    for image in outputs["images"].values():
        assert re.fullmatch(re.escape(outputs["registryUrl"]) + r"@sha256:[0-9a-f]{64}", image)
    assert len(outputs["trainerIds"]) == nodes
    assert outputs["trainerPrivateIps"] == [f"10.42.1.{10 + i}" for i in range(nodes)]
    assert re.fullmatch(r"https://\w+\.lambda-url\.us-east-1\.on\.aws/", outputs["endpointUrl"])
    assert outputs["alarmTopic"].startswith("arn:aws:sns:us-east-1:123456789012:")
    assert outputs["dashboardUrl"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home"
        f"?region=us-east-1#dashboards:name=cloud-ai-{name}-alarms"
    )


@pulumi.runtime.test
def test_deployment_outputs_match_the_components() -> pulumi.Output[None]:
    deployment = stack("aws-prod").program["deployment"]

    def check(values: list[str]) -> None:
        store_url, endpoint_url, topic = values
        assert store_url.startswith("s3://")
        assert endpoint_url.endswith(".on.aws/")
        assert topic.startswith("arn:aws:sns:")

    return pulumi.Output.all(
        deployment.outputs.store_url, deployment.outputs.endpoint_url, deployment.outputs.alarm_topic
    ).apply(check)

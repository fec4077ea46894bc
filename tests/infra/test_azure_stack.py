"""The Azure stacks as a whole: what each declares, how many resources, their tags and the stack outputs."""

from __future__ import annotations

from collections import Counter

import pulumi
import pytest

from infra.mocks import StackRun, stack_file
from infra.mocks.azure import SUBSCRIPTION, TENANT
from tests.infra.conftest import stack

# Resource counts by type: a resource silently dropped (an unknown computed output) or added fails here.
COMMON = {
    "azure-native:resources:ResourceGroup": 1,
    "cloud-ai:azure:ModelStore": 1,
    "azure-native:storage:StorageAccount": 2,  # the model store and the Functions host's own
    "azure-native:storage:BlobServiceProperties": 1,
    "azure-native:storage:BlobContainer": 1,
    "azure-native:storage:ManagementPolicy": 1,
    "cloud-ai:azure:Registry": 1,
    "azure-native:containerregistry:Registry": 1,
    "docker-build:index:Image": 3,
    "cloud-ai:azure:Trainers": 1,
    "azure-native:network:VirtualNetwork": 1,
    "azure-native:network:Subnet": 1,
    "azure-native:network:NetworkSecurityGroup": 1,
    "azure-native:network:PublicIPAddress": 1,
    "azure-native:network:NatGateway": 1,
    "azure-native:managedidentity:UserAssignedIdentity": 1,
    "azure-native:authorization:RoleDefinition": 1,
    "cloud-ai:azure:Endpoint": 1,
    "azure-native:operationalinsights:Workspace": 1,
    "azure-native:applicationinsights:Component": 1,
    "azure-native:web:AppServicePlan": 1,
    "azure-native:web:WebApp": 1,
    "azure-native:web:WebAppScmAllowed": 1,
    "azure-native:web:WebAppFtpAllowed": 1,
    "cloud-ai:azure:Alarms": 1,
    "azure-native:monitor:ActionGroup": 1,
    "azure-native:monitor:ScheduledQueryRule": 2,
    "azure-native:consumption:Budget": 1,
    "azure-native:applicationinsights:Workbook": 1,
}
# Role assignments: deployer AcrPush; trainer store + pull; endpoint model, host, pull, telemetry;
# per VM: self-stop and metrics publisher.
EXPECTED = {
    "azure-dev": {
        **COMMON,
        "azure-native:compute:VirtualMachine": 1,
        "azure-native:network:NetworkInterface": 1,
        "azure-native:devtestlab:GlobalSchedule": 1,
        "azure-native:monitor:MetricAlert": 3,
        "azure-native:authorization:RoleAssignment": 7 + 2,
    },
    "azure-prod": {
        **COMMON,
        "azure-native:compute:VirtualMachine": 2,
        "azure-native:network:NetworkInterface": 2,
        "azure-native:devtestlab:GlobalSchedule": 2,
        "azure-native:compute:ProximityPlacementGroup": 1,
        "azure-native:monitor:MetricAlert": 6,
        "azure-native:authorization:RoleAssignment": 7 + 4,
    },
}
TOTALS = {"azure-dev": 48, "azure-prod": 57}
STACKS = list(EXPECTED)
COMPONENTS = {"ModelStore", "Registry", "Trainers", "Endpoint", "Alarms"}
# Types without ARM tags (sub-resources, role objects, extension-style resources, images).
UNTAGGED = {
    "azure-native:storage:BlobServiceProperties",
    "azure-native:storage:BlobContainer",
    "azure-native:storage:ManagementPolicy",
    "azure-native:network:Subnet",
    "azure-native:authorization:RoleDefinition",
    "azure-native:authorization:RoleAssignment",
    "azure-native:web:WebAppScmAllowed",
    "azure-native:web:WebAppFtpAllowed",
    "azure-native:consumption:Budget",
    "docker-build:index:Image",
}


def test_every_azure_stack_file_is_covered() -> None:
    files = {stack_file(name).name for name in STACKS}
    on_disk = {path.name for path in stack_file("azure-dev").parent.glob("Pulumi.azure-*.yaml")}
    assert files == on_disk


@pytest.mark.parametrize("name", STACKS)
def test_declares_exactly_the_expected_resources(name: str) -> None:
    run = stack(name)
    assert dict(Counter(r.type for r in run.resources)) == EXPECTED[name]
    assert len(run.resources) == TOTALS[name] == sum(EXPECTED[name].values())


@pytest.mark.parametrize("name", STACKS)
def test_every_resource_sits_in_its_component(name: str) -> None:
    for resource in stack(name).resources:
        if resource.type == "azure-native:resources:ResourceGroup" or (
            resource.type.startswith("cloud-ai:azure:") and resource.type.split(":")[-1] in COMPONENTS
        ):
            assert resource.parents == ["pulumi:pulumi:Stack"], resource.name
        else:
            assert resource.parents[:2][-1].startswith("cloud-ai:azure:"), resource.name


@pytest.mark.parametrize("name", STACKS)
def test_everything_lives_in_the_stack_resource_group(name: str) -> None:
    run = stack(name)
    group = f"cloud-ai-{name}-rg"
    assert run.of_type("azure-native:resources:ResourceGroup")[0].inputs["location"] == "eastus"
    for resource in run.resources:
        if "resourceGroupName" in resource.inputs:
            assert resource.inputs["resourceGroupName"] == group, resource.name


@pytest.mark.parametrize("name", STACKS)
def test_every_taggable_resource_carries_the_common_tags(name: str) -> None:
    run = stack(name)
    expected = {
        "project": "cloud-ai",
        "stack": name,
        "owner": "ml-platform@example.com",
        "managed-by": "pulumi",
    }
    for resource in run.resources:
        if resource.type.startswith("azure-native:") and resource.type not in UNTAGGED:
            tags = resource.inputs.get("tags") or {}
            assert expected.items() <= tags.items(), resource.name
            assert tags["cost-center"] == run.config["cloud-ai:costCenter"]


def _outputs(run: StackRun) -> dict:
    return run.outputs


@pytest.mark.parametrize("name", STACKS)
def test_outputs_are_exported_with_their_real_shapes(name: str) -> None:
    outputs = _outputs(stack(name))
    nodes = 1 if name == "azure-dev" else 2
    assert outputs["storeUrl"] == "az://store"
    assert outputs["registryUrl"].endswith(".azurecr.io")
    assert set(outputs["images"]) == {"train", "serve", "function"}
    for image, ref in outputs["images"].items():
        assert ref.startswith(f"{outputs['registryUrl']}/cloud-ai/{image}@sha256:"), ref
    assert len(outputs["trainerIds"]) == nodes
    assert all(
        i.startswith(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/cloud-ai-{name}-rg/")
        and "/providers/Microsoft.Compute/virtualMachines/" in i
        for i in outputs["trainerIds"]
    )
    assert outputs["trainerPrivateIps"] == ["10.42.1.10", "10.42.1.11"][:nodes]
    assert outputs["endpointUrl"].startswith("https://") and outputs["endpointUrl"].endswith(
        ".azurewebsites.net"
    )
    assert "/providers/Microsoft.Insights/actionGroups/" in outputs["alarmTopic"]
    assert outputs["dashboardUrl"].startswith(f"https://portal.azure.com/#@{TENANT}/resource/subscriptions/")
    assert outputs["dashboardUrl"].endswith("/workbook")
    assert "/providers/Microsoft.Insights/workbooks/" in outputs["dashboardUrl"]


@pytest.mark.parametrize("name", STACKS)
def test_globally_named_services_get_valid_unique_names(name: str) -> None:
    run = stack(name)
    accounts = [r.inputs["accountName"] for r in run.of_type("azure-native:storage:StorageAccount")]
    registry = run.of_type("azure-native:containerregistry:Registry")[0].inputs["registryName"]
    assert len(set(accounts)) == 2
    for account in accounts:
        assert account.isalnum() and account.islower() and 3 <= len(account) <= 24, account
    assert registry.isalnum() and 5 <= len(registry) <= 50
    other = "azure-prod" if name == "azure-dev" else "azure-dev"
    assert (
        registry != stack(other).of_type("azure-native:containerregistry:Registry")[0].inputs["registryName"]
    )


@pulumi.runtime.test
def test_deployment_outputs_match_the_components() -> pulumi.Output[None]:
    deployment = stack("azure-prod").program["deployment"]

    def check(values: list) -> None:
        store_url, registry_url, endpoint_url, topic, ips = values
        assert store_url == "az://store"
        assert registry_url.endswith(".azurecr.io")
        assert endpoint_url.endswith(".azurewebsites.net")
        assert "/actionGroups/" in topic
        assert ips == ["10.42.1.10", "10.42.1.11"]

    outputs = deployment.outputs
    return pulumi.Output.all(
        outputs.store_url,
        outputs.registry_url,
        outputs.endpoint_url,
        outputs.alarm_topic,
        pulumi.Output.all(*outputs.trainer_private_ips),
    ).apply(check)


def _snake_keys(value: object, path: str) -> list[str]:
    if isinstance(value, dict):
        return [f"{path}.{k}" for k in value if "_" in k] + [
            found for k, v in value.items() for found in _snake_keys(v, f"{path}.{k}")
        ]
    if isinstance(value, list):
        return [found for item in value for found in _snake_keys(item, path)]
    return []


@pytest.mark.parametrize("name", STACKS)
def test_no_input_reaches_arm_in_snake_case(name: str) -> None:
    """A plain dict passed where the SDK expects a union of Args is sent untranslated: ARM ignores it."""
    leaks = [leak for r in stack(name).resources for leak in _snake_keys(r.inputs, r.name)]
    assert leaks == []

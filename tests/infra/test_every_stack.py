"""The provider-neutral contract, checked on every stack file in stacks/: whatever the cloud, a stack
declares no name twice, keeps every cloud resource inside one of its components, and exports the same
outputs (infra/platform.StackOutputs) with the same meaning."""

from __future__ import annotations

import pytest

from infra.mocks import STACKS, stack_name
from infra.platform import WORKLOAD_IMAGES, worker_addresses
from tests.infra.conftest import stack

EVERY_STACK = sorted(stack_name(path) for path in STACKS.glob("Pulumi.*.yaml"))
OUTPUTS = {
    "storeUrl",
    "registryUrl",
    "images",
    "trainerIds",
    "trainerPrivateIps",
    "endpointUrl",
    "alarmTopic",
    "dashboardUrl",
}
STORE_SCHEMES = {"aws": "s3://", "gcp": "gs://", "azure": "az://"}


def test_there_is_a_dev_and_a_prod_stack_per_cloud() -> None:
    assert [f"{cloud}-{env}" for cloud in ("aws", "azure", "gcp") for env in ("dev", "prod")] == EVERY_STACK


@pytest.mark.parametrize("name", EVERY_STACK)
def test_no_name_is_declared_twice(name: str) -> None:
    assert stack(name).duplicate_names() == []


@pytest.mark.parametrize("name", EVERY_STACK)
def test_every_cloud_resource_sits_in_a_component(name: str) -> None:
    loose = [r.name for r in stack(name).resources if not r.type.startswith("cloud-ai:") and not r.parents]
    assert loose == []


@pytest.mark.parametrize("name", EVERY_STACK)
def test_exports_the_same_outputs_everywhere(name: str) -> None:
    run = stack(name)
    cloud, nodes = run.config["cloud-ai:cloud"], run.config["cloud-ai:trainer"]["nodes"]
    outputs = run.outputs

    assert set(outputs) == OUTPUTS
    assert outputs["storeUrl"].startswith(STORE_SCHEMES[cloud])
    assert set(outputs["images"]) == set(WORKLOAD_IMAGES)
    assert all("@sha256:" in ref for ref in outputs["images"].values())
    assert len(outputs["trainerIds"]) == nodes
    assert outputs["trainerPrivateIps"] == worker_addresses(nodes)
    assert outputs["endpointUrl"].startswith("https://")
    assert all(outputs[key] for key in ("registryUrl", "alarmTopic", "dashboardUrl"))

"""The GCP components' outputs, asserted inside `Output.apply` (the returned output fails the test)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from infra.config import settings_from
from infra.gcp.endpoint import cpu_for, model_read_condition
from infra.gcp.identity import ACCOUNT_ID_MAX, account_id
from infra.mocks import read_config, stack_file
from infra.platform import worker_addresses
from tests.infra.conftest import stack


def deployment(name: str) -> Any:
    return stack(name).program["deployment"]


@pulumi.runtime.test
def test_store_url_names_the_bucket() -> pulumi.Output[None]:
    store = deployment("gcp-dev").store

    def check(values: list[str]) -> None:
        bucket, url = values
        assert url == f"gs://{bucket}" and bucket.startswith("cloud-ai-gcp-dev-store")

    return pulumi.Output.all(store.bucket_name, store.url).apply(check)


@pulumi.runtime.test
def test_registry_refs_pin_digests_in_this_repository() -> pulumi.Output[None]:
    registry = deployment("gcp-prod").registry

    def check(values: list[Any]) -> None:
        url, refs = values
        assert url == "us-central1-docker.pkg.dev/cloud-ai-prod-123456/cloud-ai-gcp-prod-images"
        assert set(refs) == {"train", "serve", "function"}
        for image, ref in refs.items():
            assert ref.startswith(f"{url}/{image}@sha256:") and len(ref.rsplit(":", 1)[1]) == 64

    return pulumi.Output.all(registry.url, pulumi.Output.all(**registry.images)).apply(check)


@pulumi.runtime.test
def test_trainer_private_ips_are_the_fixed_worker_addresses() -> pulumi.Output[None]:
    trainer = deployment("gcp-prod").trainer

    def check(ips: list[str]) -> None:
        assert ips == worker_addresses(2)

    return pulumi.Output.all(*trainer.private_ips).apply(check)


@pulumi.runtime.test
def test_trainer_ids_are_distinct_instance_ids() -> pulumi.Output[None]:
    trainer = deployment("gcp-prod").trainer

    def check(ids: list[str]) -> None:
        assert len(set(ids)) == 2 and all(i.isdigit() for i in ids)

    return pulumi.Output.all(*trainer.ids).apply(check)


@pulumi.runtime.test
def test_trainer_boot_disks_and_metadata() -> pulumi.Output[None]:
    (instance,) = deployment("gcp-dev").trainer.instances

    def check(values: list[Any]) -> None:
        metadata, scheduling = values
        assert "TF_CONFIG=''" in metadata["startup-script"]  # one node: no cluster to join
        assert scheduling["provisioning_model"] == "SPOT"

    return pulumi.Output.all(instance.metadata, instance.scheduling).apply(check)


@pulumi.runtime.test
def test_endpoint_url_is_the_cloud_run_uri() -> pulumi.Output[None]:
    endpoint = deployment("gcp-dev").endpoint

    def check(values: list[str]) -> None:
        url, uri = values
        assert url == uri and url.startswith("https://cloud-ai-gcp-dev-endpoint") and url.endswith(".run.app")

    return pulumi.Output.all(endpoint.url, endpoint.service.uri).apply(check)


@pulumi.runtime.test
def test_endpoint_service_account_email() -> pulumi.Output[None]:
    endpoint = deployment("gcp-prod").endpoint

    def check(email: str) -> None:
        assert email == "cloud-ai-gcp-prod-endpoint@cloud-ai-prod-123456.iam.gserviceaccount.com"

    return endpoint.account.email.apply(check)


@pulumi.runtime.test
def test_alarm_outputs() -> pulumi.Output[None]:
    alarms = deployment("gcp-prod").alarms

    def check(values: list[str]) -> None:
        topic, url, dashboard_id = values
        assert topic.startswith("projects/cloud-ai-prod-123456/notificationChannels/")
        assert url.endswith(f"/{dashboard_id.rsplit('/', 1)[-1]}?project=cloud-ai-prod-123456")

    return pulumi.Output.all(alarms.topic, alarms.dashboard_url, alarms.dashboard.id).apply(check)


def test_account_ids_fit_gcp_limits_and_stay_unique() -> None:
    config = read_config(stack_file("gcp-dev"))
    long = settings_from(config, "gcp-a-very-long-stack-name-for-testing")
    ids = {account_id(long, "trainer"), account_id(long, "endpoint")}
    assert len(ids) == 2 and all(len(i) <= ACCOUNT_ID_MAX and i[0].isalpha() for i in ids)
    assert account_id(settings_from(config, "gcp-dev"), "trainer") == "cloud-ai-gcp-dev-trainer"


@pytest.mark.parametrize(("memory_mb", "cpu"), [(512, "1"), (4096, "1"), (6144, "2"), (10240, "4")])
def test_cpu_follows_cloud_run_memory_floors(memory_mb: int, cpu: str) -> None:
    assert cpu_for(memory_mb) == cpu


def test_model_read_condition_is_scoped_to_the_prefix() -> None:
    expression = model_read_condition("b", "m")
    assert 'resource.name.startsWith("projects/_/buckets/b/objects/models/m/")' in expression
    assert (
        'api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("models/m/")'
        in expression
    )

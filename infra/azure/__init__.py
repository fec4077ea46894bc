"""The Azure stack (azure-native): one resource group holding the five components of the platform contract."""

from __future__ import annotations

from pulumi_azure_native import authorization, resources

from infra.azure.alarms import Alarms
from infra.azure.endpoint import Endpoint
from infra.azure.registry import Registry
from infra.azure.site import Site
from infra.azure.store import ModelStore
from infra.azure.trainer import Trainers
from infra.config import Settings
from infra.platform import Deployment, StackOutputs, resource_name


def deploy(settings: Settings) -> Deployment:
    """Declare the stack in its own resource group, so the budget, access and teardown cover exactly it."""
    group = resources.ResourceGroup(
        resource_name(settings, "rg"),
        resource_group_name=resource_name(settings, "rg"),
        location=settings.location.region,
        tags=settings.tags,
    )
    client = authorization.get_client_config_output()
    site = Site(
        settings=settings,
        group_name=group.name,
        group_id=group.id,
        subscription_id=client.subscription_id,
        tenant_id=client.tenant_id,
        deployer_id=client.object_id,
    )
    store = ModelStore(resource_name(settings, "store"), site)
    registry = Registry(resource_name(settings, "registry"), site)
    trainer = Trainers(resource_name(settings, "trainer"), site, store, registry)
    endpoint = Endpoint(resource_name(settings, "endpoint"), site, store, registry)
    alarms = Alarms(resource_name(settings, "alarms"), site, trainer, endpoint)
    outputs = StackOutputs(
        store_url=store.url,
        registry_url=registry.url,
        images=registry.images,
        trainer_ids=trainer.ids,
        trainer_private_ips=trainer.private_ips,
        endpoint_url=endpoint.url,
        alarm_topic=alarms.topic,
        dashboard_url=alarms.dashboard_url,
    )
    return Deployment(store, registry, trainer, alarms, endpoint, outputs)

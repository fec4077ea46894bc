"""Google Cloud: the five components of a cloud-ai stack, composed by `deploy(settings)`."""

from __future__ import annotations

from infra.config import Settings
from infra.gcp.alarms import Alarms
from infra.gcp.endpoint import Endpoint
from infra.gcp.registry import Registry
from infra.gcp.store import ModelStore
from infra.gcp.trainer import Trainers
from infra.platform import Deployment, StackOutputs, resource_name


def deploy(settings: Settings) -> Deployment:
    """Declare the store, registry, trainers, endpoint and alarms of one GCP stack."""
    store = ModelStore(resource_name(settings, "store"), settings)
    registry = Registry(resource_name(settings, "registry"), settings)
    trainer = Trainers(resource_name(settings, "trainer"), settings, store, registry)
    endpoint = Endpoint(resource_name(settings, "endpoint"), settings, store, registry)
    alarms = Alarms(resource_name(settings, "alarms"), settings, endpoint)
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

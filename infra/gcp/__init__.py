"""Google Cloud: the five components of a cloud-ai stack, composed by `deploy(settings)`."""

from __future__ import annotations

import pulumi

from infra.config import Settings
from infra.gcp.alarms import Alarms
from infra.gcp.endpoint import Endpoint
from infra.gcp.project import Project
from infra.gcp.registry import Registry
from infra.gcp.store import ModelStore
from infra.gcp.trainer import Trainers
from infra.platform import Deployment, StackOutputs, resource_name


def deploy(settings: Settings) -> Deployment:
    """Declare the store, registry, trainers, endpoint and alarms of one GCP stack.

    They are declared once the project's APIs are on: depending on their component delays every child.
    """
    project = Project(resource_name(settings, "project"), settings)
    after_apis = pulumi.ResourceOptions(depends_on=project.apis)
    store = ModelStore(resource_name(settings, "store"), settings, after_apis)
    registry = Registry(resource_name(settings, "registry"), settings, after_apis)
    trainer = Trainers(resource_name(settings, "trainer"), settings, store, registry, after_apis)
    endpoint = Endpoint(resource_name(settings, "endpoint"), settings, store, registry, after_apis)
    alarms = Alarms(resource_name(settings, "alarms"), settings, endpoint, project, after_apis)
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

"""AWS: the five components of a cloud-ai stack, composed by `deploy(settings)`.

store (S3) and registry (ECR + the workload images) come first; the trainers (EC2) and the endpoint
(Lambda) read from both; the alarms watch the trainers and the endpoint.
"""

from __future__ import annotations

from infra.aws.alarms import Alarms
from infra.aws.endpoint import Endpoint
from infra.aws.registry import Registry
from infra.aws.store import ModelStore
from infra.aws.trainer import Trainers
from infra.config import Settings
from infra.platform import Deployment, StackOutputs, resource_name

__all__ = ["Alarms", "Endpoint", "ModelStore", "Registry", "Trainers", "deploy"]


def deploy(settings: Settings) -> Deployment:
    """Declare the stack's resources on AWS and the outputs it exports."""
    store = ModelStore(resource_name(settings, "store"), settings)
    registry = Registry(resource_name(settings, "registry"), settings)
    trainers = Trainers(resource_name(settings, "trainer"), settings, store, registry)
    endpoint = Endpoint(resource_name(settings, "endpoint"), settings, store, registry)
    alarms = Alarms(resource_name(settings, "alarms"), settings, trainers, endpoint)
    outputs = StackOutputs(
        store_url=store.url,
        registry_url=registry.url,
        images=registry.images,
        trainer_ids=trainers.ids,
        trainer_private_ips=trainers.private_ips,
        endpoint_url=endpoint.url,
        alarm_topic=alarms.topic.arn,
        dashboard_url=alarms.dashboard_url,
    )
    return Deployment(store, registry, trainers, alarms, endpoint, outputs)

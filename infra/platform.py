"""The provider-neutral contract: what every cloud's `deploy(settings)` returns, and the shared names.

Each cloud folder (aws/, gcp/, azure/) holds the same five modules (store, registry, trainer, alarms,
endpoint) and an `__init__.py` whose `deploy(settings) -> StackOutputs` composes them. Nothing here
knows a cloud; no cloud module imports another cloud's.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from infra.config import Settings

TRAINING_PORT = 12345
WORKER_CIDR = "10.42.1.0/24"
FIRST_WORKER_HOST = 10

WORKLOAD_IMAGES = ("train", "serve", "function")
# Absolute, because Pulumi may run the program from infra/ (Pulumi.yaml's `main`), not the repository.
REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "workload" / "Dockerfile"


@dataclass(frozen=True)
class StackOutputs:
    """The stack outputs every cloud exports under the same names."""

    store_url: pulumi.Input[str]
    registry_url: pulumi.Input[str]
    images: Mapping[str, pulumi.Input[str]]
    trainer_ids: Sequence[pulumi.Input[str]]
    trainer_private_ips: Sequence[pulumi.Input[str]]
    endpoint_url: pulumi.Input[str]
    alarm_topic: pulumi.Input[str]
    dashboard_url: pulumi.Input[str]

    def export(self) -> None:
        pulumi.export("storeUrl", self.store_url)
        pulumi.export("registryUrl", self.registry_url)
        pulumi.export("images", dict(self.images))
        pulumi.export("trainerIds", list(self.trainer_ids))
        pulumi.export("trainerPrivateIps", list(self.trainer_private_ips))
        pulumi.export("endpointUrl", self.endpoint_url)
        pulumi.export("alarmTopic", self.alarm_topic)
        pulumi.export("dashboardUrl", self.dashboard_url)


@dataclass(frozen=True)
class Deployment:
    """The five components of a stack (tests reach into them) and the outputs they export."""

    store: pulumi.ComponentResource
    registry: pulumi.ComponentResource
    trainer: pulumi.ComponentResource
    alarms: pulumi.ComponentResource
    endpoint: pulumi.ComponentResource
    outputs: StackOutputs


def deploy(settings: Settings) -> Deployment:
    """Declare the stack on its cloud: `infra.<cloud>.deploy(settings)`."""
    cloud = importlib.import_module(f"infra.{settings.cloud}")
    deployment: Deployment = cloud.deploy(settings)
    return deployment


def workload_image(
    name: str,
    target: str,
    tag: pulumi.Input[str],
    registry: docker_build.RegistryArgs | None,
    opts: pulumi.ResourceOptions,
) -> docker_build.Image:
    """workload/Dockerfile's TARGET for linux/amd64, pushed as TAG on `up` only (never built in preview)."""
    return docker_build.Image(
        name,
        context=docker_build.BuildContextArgs(location=str(REPO_ROOT)),
        dockerfile=docker_build.DockerfileArgs(location=str(DOCKERFILE)),
        target=target,
        platforms=[docker_build.Platform.LINUX_AMD64],
        tags=[tag],
        push=True,
        build_on_preview=False,
        registries=[registry] if registry is not None else None,
        opts=opts,
    )


def resource_name(settings: Settings, part: str) -> str:
    """`<project>-<stack>-<part>`: unique per stack, readable in every console."""
    return f"{settings.project}-{settings.stack}-{part}"


def labels(settings: Settings) -> dict[str, str]:
    """The common tags as GCP labels: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return {key: _label_value(value) for key, value in settings.tags.items()}


def _label_value(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "_", value.lower().replace("@", "_at_"))[:63]


def worker_addresses(nodes: int, cidr: str = WORKER_CIDR) -> list[str]:
    """Fixed private addresses for the trainer nodes, so every node's TF_CONFIG is known before any boots."""
    network = ipaddress.ip_network(cidr)
    hosts = list(network.hosts())
    if FIRST_WORKER_HOST + nodes > len(hosts):
        raise ValueError(f"{cidr} has no room for {nodes} workers")
    return [str(hosts[FIRST_WORKER_HOST - 1 + i]) for i in range(nodes)]


def tf_config(addresses: Sequence[str], index: int, port: int = TRAINING_PORT) -> str:
    """The TF_CONFIG of worker INDEX (empty for a single node: no cluster to join)."""
    if len(addresses) <= 1:
        return ""
    cluster = {"worker": [f"{address}:{port}" for address in addresses]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}, separators=(",", ":"))

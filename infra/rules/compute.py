"""GPU trainers as declared on each cloud: machine type, GPUs, spot or not, and the catalog's price.

Shared by the cost rules and `cloud-ai plan`, so both count and price exactly the same machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infra.pricing import catalog
from infra.rules.model import Resource
from infra.rules.props import is_true, mappings, nested

CLOUD_OF_PREFIX = {"aws:": "aws", "gcp:": "gcp", "azure-native:": "azure"}
MACHINE_TYPES = {
    "aws:ec2/instance:Instance",
    "aws:ec2/spotInstanceRequest:SpotInstanceRequest",
    "gcp:compute/instance:Instance",
    "azure-native:compute:VirtualMachine",
}


@dataclass(frozen=True)
class Machine:
    """One declared VM; `hourly_usd` is None when the catalog has no price for its type."""

    resource: Resource
    cloud: str
    machine_type: str
    gpus: int
    spot: bool
    hourly_usd: float | None

    @property
    def is_trainer(self) -> bool:
        return self.gpus > 0


def _last(path: object) -> str:
    """`zones/us-central1-a/machineTypes/g2-standard-4` -> `g2-standard-4`."""
    return str(path or "").rsplit("/", 1)[-1]


def _shape(resource: Resource) -> tuple[str, bool, list[tuple[str, int]]]:
    """(machine type, spot, attached accelerators) as the cloud spells them."""
    props = resource.props
    if resource.type.startswith("aws:"):
        spot = resource.type.endswith("SpotInstanceRequest") or (
            nested(props, "instanceMarketOptions", "marketType") == "spot"
        )
        return str(props.get("instanceType", "")), spot, []
    if resource.type.startswith("gcp:"):
        scheduling = props.get("scheduling") or {}
        spot = nested(scheduling, "provisioningModel") == "SPOT" or is_true(nested(scheduling, "preemptible"))
        accelerators = [
            (_last(a.get("type")), int(a.get("count") or 0)) for a in mappings(props.get("guestAccelerators"))
        ]
        return _last(props.get("machineType")), spot, accelerators
    return str(nested(props, "hardwareProfile", "vmSize") or ""), props.get("priority") == "Spot", []


def machine(resource: Resource, region: str) -> Machine | None:
    """The VM a resource declares, priced from infra/pricing; None for anything that is not a VM."""
    if resource.type not in MACHINE_TYPES:
        return None
    cloud = next(c for prefix, c in CLOUD_OF_PREFIX.items() if resource.type.startswith(prefix))
    machine_type, spot, accelerators = _shape(resource)
    prices = catalog(cloud)
    offer = prices.instance(machine_type, region)
    gpus = (offer.gpus if offer else 0) + sum(count for _, count in accelerators)
    hourly: float | None = offer.hourly_usd(spot) if offer else None
    for accelerator, count in accelerators:
        attached = prices.accelerator(accelerator, region)
        hourly = hourly + attached.hourly_usd(spot) * count if hourly is not None and attached else None
    return Machine(resource, cloud, machine_type, gpus, spot, hourly)


def machines(resources: Sequence[Resource], region: str) -> list[Machine]:
    found = (machine(r, region) for r in resources)
    return [m for m in found if m is not None]


def trainers(resources: Sequence[Resource], region: str) -> list[Machine]:
    """The GPU machines of a stack."""
    return [m for m in machines(resources, region) if m.is_trainer]

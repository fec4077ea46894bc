"""The price catalog: machine types, their NVIDIA GPUs and $/hour, kept as CSV data (one file per cloud).

A row's `region` is a region name or `*` (any region); a region-specific row wins over `*`. Users extend
the catalog by editing the CSV or by pointing CLOUD_AI_PRICING_DIR at a folder of their own CSVs, whose
rows take precedence over the shipped ones.

services.csv prices the always-on parts of a stack (storage, registry, function requests, alarms, NAT...)
with an assumed monthly quantity per resource, for the monthly baseline `cloud-ai plan` shows.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLOUDS = ("aws", "gcp", "azure")
VENDOR_DOMAINS = {"aws.amazon.com": "aws", "cloud.google.com": "gcp", "azure.microsoft.com": "azure"}


@dataclass(frozen=True)
class Offer:
    """One machine type (kind `instance`) or one attachable GPU (kind `accelerator`, priced per GPU)."""

    kind: str
    region: str
    type: str
    gpu: str
    gpus: int
    vcpus: int
    memory_gb: float
    on_demand_usd: float
    spot_usd: float
    families: tuple[str, ...]

    def hourly_usd(self, spot: bool) -> float:
        return self.spot_usd if spot else self.on_demand_usd


def _data_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _rows(path: Path) -> list[Offer]:
    return [
        Offer(
            kind=row["kind"],
            region=row["region"],
            type=row["type"],
            gpu=row["gpu"],
            gpus=int(row["gpus"]),
            vcpus=int(row["vcpus"]),
            memory_gb=float(row["memory_gb"]),
            on_demand_usd=float(row["on_demand_usd"]),
            spot_usd=float(row["spot_usd"]),
            families=tuple(f for f in row["families"].split(";") if f),
        )
        for row in csv.DictReader(_data_lines(path))
    ]


@dataclass(frozen=True)
class Catalog:
    """Every offer of one cloud, user rows first."""

    cloud: str
    offers: tuple[Offer, ...]

    def find(self, kind: str, type_: str, region: str) -> Offer | None:
        matches = [o for o in self.offers if o.kind == kind and o.type == type_ and o.region in (region, "*")]
        matches.sort(key=lambda o: o.region == "*")
        return matches[0] if matches else None

    def instance(self, type_: str, region: str) -> Offer | None:
        return self.find("instance", type_, region)

    def accelerator(self, type_: str, region: str) -> Offer | None:
        return self.find("accelerator", type_, region)

    def types(self, kind: str) -> list[str]:
        return sorted({o.type for o in self.offers if o.kind == kind})


def _paths(filename: str) -> list[Path]:
    """The user's file (CLOUD_AI_PRICING_DIR) first, when there is one, then the shipped one."""
    user_dir = os.environ.get("CLOUD_AI_PRICING_DIR")
    user = Path(user_dir) / filename if user_dir else None
    return [user, HERE / filename] if user and user.exists() else [HERE / filename]


@cache
def catalog(cloud: str) -> Catalog:
    """The catalog of CLOUD: the user's CSV (CLOUD_AI_PRICING_DIR) before the shipped one."""
    return Catalog(cloud, tuple(offer for path in _paths(f"{cloud}.csv") for offer in _rows(path)))


@dataclass(frozen=True)
class Service:
    """One billable item of an always-on service (e.g. S3 storage per GB-month), per matching resource."""

    cloud: str
    item: str
    types: tuple[str, ...]
    unit: str
    usd: float
    quantity: float
    basis: str

    def monthly_usd(self, resources: int) -> float:
        """The month's cost for RESOURCES matching resources at the assumed quantity each."""
        return resources * self.quantity * self.usd


@cache
def services(cloud: str) -> tuple[Service, ...]:
    """CLOUD's rows of services.csv; a user row replaces the shipped row of the same item."""
    chosen: dict[str, Service] = {}
    for path in _paths("services.csv"):
        for row in csv.DictReader(_data_lines(path)):
            if row["cloud"] == cloud and row["item"] not in chosen:
                chosen[row["item"]] = Service(
                    cloud=cloud,
                    item=row["item"],
                    types=tuple(t for t in row["types"].split(";") if t),
                    unit=row["unit"],
                    usd=float(row["usd"]),
                    quantity=float(row["quantity"]),
                    basis=row["basis"],
                )
    return tuple(chosen.values())


def sources(cloud: str) -> list[str]:
    """Where CLOUD's prices come from and when they were recorded: the CSVs' `# source:` lines."""
    lines = [
        line for name in (f"{cloud}.csv", "services.csv") for line in (HERE / name).read_text().splitlines()
    ]
    found = [line.removeprefix("# source:").strip() for line in lines if line.startswith("# source:")]
    return [source for source in found if VENDOR_DOMAINS.get(source.split("/", 1)[0]) == cloud]

"""The price catalog: machine types, their NVIDIA GPUs and $/hour, kept as CSV data (one file per cloud).

A row's `region` is a region name or `*` (any region); a region-specific row wins over `*`. Users extend
the catalog by editing the CSV or by pointing CLOUD_AI_PRICING_DIR at a folder of their own CSVs, whose
rows take precedence over the shipped ones.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLOUDS = ("aws", "gcp", "azure")


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


def _rows(path: Path) -> list[Offer]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
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
        for row in csv.DictReader(lines)
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


@cache
def catalog(cloud: str) -> Catalog:
    """The catalog of CLOUD: the user's CSV (CLOUD_AI_PRICING_DIR) before the shipped one."""
    paths = [HERE / f"{cloud}.csv"]
    user_dir = os.environ.get("CLOUD_AI_PRICING_DIR")
    if user_dir and (Path(user_dir) / f"{cloud}.csv").exists():
        paths.insert(0, Path(user_dir) / f"{cloud}.csv")
    return Catalog(cloud, tuple(offer for path in paths for offer in _rows(path)))

"""A stack's facts from its validated settings: the same numbers the program deploys with."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.config import Settings, settings_from
from infra.rules.model import StackFacts


def facts_of(settings: Settings) -> StackFacts:
    return StackFacts(
        stack=settings.stack,
        cloud=settings.cloud,
        environment=settings.environment,
        region=settings.location.region,
        max_gpus=settings.limits.max_gpus,
        max_hourly_usd=settings.limits.max_hourly_usd,
        endpoint_public=settings.endpoint.public,
    )


def facts_from_file(path: Path, stack: str) -> StackFacts:
    """Facts of the stack file PATH (stacks/Pulumi.<stack>.yaml); raises ConfigError when it is invalid."""
    document = yaml.safe_load(path.read_text()) or {}
    return facts_of(settings_from(dict(document.get("config") or {}), stack))

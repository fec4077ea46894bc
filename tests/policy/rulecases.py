"""Negative fixtures (tests/policy/fixtures/rules/<rule>.yaml) as rule inputs: plain dicts, no pulumi."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from infra.rules import Resource, StackFacts

FIXTURES = Path(__file__).parent / "fixtures"
STACKS = Path(__file__).resolve().parents[2] / "stacks"
RULE_FIXTURES = FIXTURES / "rules"
FACTS = StackFacts(
    stack="fixture",
    cloud="aws",
    environment="dev",
    region="us-east-1",
    max_gpus=8,
    max_hourly_usd=20.0,
)


def load(rule: str) -> tuple[list[Resource], StackFacts]:
    """The resources and facts of the fixture that breaks RULE."""
    document: dict[str, Any] = yaml.safe_load((RULE_FIXTURES / f"{rule}.yaml").read_text())
    resources = [
        Resource(r["type"], r["name"], r.get("props") or {}, id=r.get("id", ""))
        for r in document["resources"]
    ]
    return resources, replace(FACTS, **document.get("facts", {}))

"""The shapes every rule speaks: a resource as plain data, a violation, the stack's facts, a rule.

Nothing here imports pulumi: the policy pack runs these rules in its own virtualenv (pulumi-policy and
its dependencies only), and `cloud-ai plan` runs them over the mock runtime's declared resources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class Resource:
    """One declared resource: its type token, logical name and properties (camelCase, as the engine has them).

    `props` is any mapping: a plain dict in tests and plans, pulumi-policy's unknown-checking proxy in the
    pack (so a rule reading a value unknown during preview is reported as such, not guessed).
    """

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    id: str = ""


@dataclass(frozen=True)
class Violation:
    """What is wrong and how to fix it; `resource` names the offender for stack rules."""

    rule: str
    message: str
    resource: str = ""


@dataclass(frozen=True)
class StackFacts:
    """What a rule needs to know about the stack beyond its resources: where, how strict, how much."""

    stack: str
    cloud: str
    environment: str
    region: str
    max_gpus: int
    max_hourly_usd: float
    endpoint_public: bool = False

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


ResourceCheck = Callable[[Resource, StackFacts], "Violation | None"]
StackCheck = Callable[[Sequence[Resource], StackFacts], "list[Violation]"]


@dataclass(frozen=True)
class Rule:
    """A named check with its enforcement level; exactly one of `resource_check` / `stack_check` is set."""

    name: str
    description: str
    level: Level
    resource_check: ResourceCheck | None = field(default=None, repr=False)
    stack_check: StackCheck | None = field(default=None, repr=False)

    @property
    def kind(self) -> Literal["resource", "stack"]:
        return "resource" if self.resource_check is not None else "stack"

    def evaluate(self, resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
        """Every violation of this rule in the stack (a resource rule runs once per resource)."""
        if self.resource_check is not None:
            found = (self.resource_check(r, facts) for r in resources)
            return [v for v in found if v is not None]
        assert self.stack_check is not None
        return self.stack_check(resources, facts)

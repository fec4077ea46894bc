"""The CrossGuard policy pack: a thin adapter that turns each rule of infra/rules into a Pulumi policy.

`pulumi preview --policy-pack policy` runs this file in the pack's own virtualenv (pulumi-policy only);
the rules come from this repository, one folder up, so the pack and `cloud-ai plan` can never disagree.
A resource's stack is read from its URN, and the stack's facts (environment, limits, region) from
stacks/Pulumi.<stack>.yaml through the same validation the program itself uses.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    Policy,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError  # noqa: E402

from infra.rules import RULES, Resource, Rule, StackFacts  # noqa: E402
from infra.rules.facts import facts_from_file  # noqa: E402

PACK_NAME = "cloud-ai-guardrails"
LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`."""
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


@cache
def facts_for(stack: str) -> StackFacts:
    """The stack's facts from its stack file; a missing or invalid file stops the preview with why."""
    path = REPO / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise RuntimeError(f"cloud-ai policy pack: no stack file {path} for stack {stack!r}")
    return facts_from_file(path, stack)


def _known_id(props: Any) -> str:
    """A resource's id where the engine already knows it (not for resources a preview will create)."""
    try:
        value = props.get("id")
    except UnknownValueError:
        return ""
    return value if isinstance(value, str) else ""


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    check = rule.resource_check
    assert check is not None

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(args.resource_type, args.name, args.props, args.urn)
        violation = check(resource, facts_for(stack_of(args.urn)))
        if violation is not None:
            report_violation(violation.message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=LEVELS[rule.level],
    )


def stack_policy(rule: Rule) -> StackValidationPolicy:
    check = rule.stack_check
    assert check is not None

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            Resource(r.resource_type, r.name, r.props, r.urn, _known_id(r.props)) for r in args.resources
        ]
        if not resources:
            return
        urns = {r.name: r.urn for r in resources}
        for violation in check(resources, facts_for(stack_of(resources[0].urn))):
            report_violation(violation.message, urns.get(violation.resource))

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=LEVELS[rule.level],
    )


def policies() -> list[Policy]:
    return [resource_policy(r) if r.kind == "resource" else stack_policy(r) for r in RULES]


PolicyPack(name=PACK_NAME, policies=policies())

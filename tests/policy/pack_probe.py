"""Runs inside the policy pack's virtualenv (.venv-policy), never under pytest's main environment.

Loads policy/ the way Pulumi's Python analyzer does (the folder as __main__) with PolicyPack captured
instead of serving gRPC, prints the policies it registers, and runs each case from stdin through them
with pulumi-policy's own argument types and unknown-checking property proxies.
"""

from __future__ import annotations

import json
import runpy
import sys
from typing import Any

import pulumi_policy
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

captured: dict[str, Any] = {}


class CapturedPack:
    def __init__(self, name: str, policies: list[Any], **_: Any) -> None:
        captured.update(name=name, policies=policies)


def urn(stack: str, resource: dict[str, Any]) -> str:
    return f"urn:pulumi:{stack}::cloud-ai::{resource['type']}::{resource['name']}"


def run(policy: Any, case: dict[str, Any]) -> list[str] | str:
    """The messages POLICY reports for the case's resources, or 'unknown' when it reads a preview unknown."""
    reported: list[str] = []

    def report(message: str, _urn: str | None = None) -> None:
        reported.append(message)

    resources = case["resources"]
    try:
        if isinstance(policy, StackValidationPolicy):
            stack = [
                PolicyResource(
                    r["type"],
                    unknown_checking_proxy(r["props"]),
                    urn(case["stack"], r),
                    r["name"],
                    None,
                    None,
                    None,
                    [],
                    {},
                )
                for r in resources
            ]
            policy.validate(StackValidationArgs(stack), report)
        else:
            for r in resources:
                props = unknown_checking_proxy(r["props"])
                args = ResourceValidationArgs(r["type"], props, urn(case["stack"], r), r["name"], None, None)
                policy.validate(args, report)
    except UnknownValueError:
        return "unknown"
    return reported


def main() -> None:
    pulumi_policy.PolicyPack = CapturedPack
    runpy.run_path(sys.argv[1], run_name="__main__")
    cases = json.load(sys.stdin)
    policies = captured["policies"]
    print(
        json.dumps(
            {
                "pack": captured["name"],
                "policies": [
                    {
                        "name": p.name,
                        "kind": "stack" if isinstance(p, StackValidationPolicy) else "resource",
                        "level": p.enforcement_level.value,
                        "description": p.description,
                    }
                    for p in policies
                ],
                "results": [{p.name: run(p, case) for p in policies} for case in cases],
            }
        )
    )


if __name__ == "__main__":
    main()

"""What the AWS provider computes for the resources and invokes cloud-ai uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from infra.mocks import CloudMocks, Computed

ACCOUNT = "123456789012"


def default_outputs(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """Every AWS resource has an ARN and, when auto-named, a physical name with a random suffix."""
    from infra.mocks import short_hash

    physical = inputs.get("name") or f"{name}-{short_hash(name)}"
    arn = f"arn:aws:mock:{mocks.region}:{ACCOUNT}:{physical}"
    return {"arn": arn, "name": physical, "tagsAll": inputs.get("tags")}


COMPUTED: dict[str, Computed] = {}

CALLS: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = {}

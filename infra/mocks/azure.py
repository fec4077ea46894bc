"""What the Azure Resource Manager (azure-native) computes for the resources and invokes cloud-ai uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from infra.mocks import CloudMocks, Computed

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TENANT = "11111111-1111-1111-1111-111111111111"


def default_outputs(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """Every ARM resource has a name (auto-named with a suffix when not given) and an ARM id."""
    from infra.mocks import short_hash

    own_names = [v for k, v in inputs.items() if k.endswith("Name") and k != "resourceGroupName"]
    physical = next((v for v in own_names if isinstance(v, str)), None) or f"{name}{short_hash(name)}"
    group = inputs.get("resourceGroupName", "rg")
    return {
        "name": physical,
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/mock/{physical}",
    }


COMPUTED: dict[str, Computed] = {}

CALLS: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = {}

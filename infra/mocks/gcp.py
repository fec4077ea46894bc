"""What the Google Cloud provider computes for the resources and invokes cloud-ai uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from infra.mocks import CloudMocks, Computed

PROJECT_NUMBER = "123456789012"


def default_outputs(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """Every GCP resource has a name (auto-named with a suffix when not given) and a self link."""
    from infra.mocks import short_hash

    physical = inputs.get("name") or f"{name}-{short_hash(name)}"
    project = inputs.get("project", "mock-project")
    return {
        "name": physical,
        "project": project,
        "selfLink": f"https://www.googleapis.com/mock/v1/projects/{project}/{physical}",
    }


COMPUTED: dict[str, Computed] = {}

CALLS: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = {}

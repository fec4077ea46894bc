"""The GCP project as a stack needs it: the Google APIs its resources call, enabled first, and its number.

A new project has few APIs on. Without this, the first `pulumi up` stops at the first Compute, Artifact
Registry or Cloud Run call with "API has not been used in project ... or it is disabled". The other
components wait for `apis` (see `deploy`). Enabling goes through Service Usage, which every project has
on. `pulumi destroy` leaves the APIs on: other workloads in the project may use them.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import Settings

# Every API a stack's resources (or the trainers' Ops Agent) call, and who calls it.
REQUIRED_APIS: dict[str, str] = {
    "artifactregistry.googleapis.com": "registry: the Docker repository",
    "billingbudgets.googleapis.com": "alarms: the monthly budget",
    "cloudresourcemanager.googleapis.com": "project IAM grants and the project-number lookup",
    "compute.googleapis.com": "trainers: VMs, network, NAT, placement",
    "iam.googleapis.com": "the workload service accounts",
    "logging.googleapis.com": "the trainers' Ops Agent logs",
    "monitoring.googleapis.com": "alert policies, the dashboard, the Ops Agent's GPU metrics",
    "run.googleapis.com": "endpoint: the Cloud Run service",
    "storage.googleapis.com": "model store: the bucket",
}


def api_resource_name(name: str, api: str) -> str:
    """`<name>-compute` for compute.googleapis.com: one stable Pulumi name per API."""
    return f"{name}-{api.split('.', 1)[0]}"


class Project(pulumi.ComponentResource):
    """The stack's project: REQUIRED_APIS enabled, and the project number the budget filter needs."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:gcp:Project", name, None, opts)
        self.apis = [
            gcp.projects.Service(
                api_resource_name(name, api),
                project=settings.location.project,
                service=api,
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in REQUIRED_APIS
        ]
        lookup = gcp.organizations.get_project_output(
            project_id=settings.location.project,
            opts=pulumi.InvokeOutputOptions(depends_on=self.apis),
        )
        self.number: pulumi.Output[str] = lookup.number
        self.register_outputs({"apis": [api.service for api in self.apis], "number": self.number})

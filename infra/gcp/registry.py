"""The registry: an Artifact Registry Docker repository and the workload images, pushed, pinned by digest."""

from __future__ import annotations

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from infra.config import Settings
from infra.platform import WORKLOAD_IMAGES, labels, resource_name, workload_image

# Dockerfile target per workload image; the GCP function image serves a functions-framework HTTP function.
TARGETS = {"train": "train", "serve": "serve", "function": "function-gcp"}
KEEP_VERSIONS = 10


def registry_host(region: str) -> str:
    """Artifact Registry's Docker host for a region (what `docker login` and image refs use)."""
    return f"{region}-docker.pkg.dev"


class Registry(pulumi.ComponentResource):
    """A private Docker repository; images are built on `up` only and referenced by digest, never by tag."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:gcp:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = gcp.artifactregistry.Repository(
            name,
            repository_id=resource_name(settings, "images"),
            location=settings.location.region,
            format="DOCKER",
            description=f"cloud-ai workload images of stack {settings.stack}",
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-recent",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=KEEP_VERSIONS
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="drop-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED", older_than="2592000s"
                    ),
                ),
            ],
            labels=labels(settings),
            opts=child,
        )
        self.host = registry_host(settings.location.region)
        self.url: pulumi.Output[str] = pulumi.Output.concat(
            self.host, "/", settings.location.project or "", "/", self.repository.repository_id
        )
        token = gcp.organizations.get_client_config_output().access_token
        login = docker_build.RegistryArgs(
            address=self.host, username="oauth2accesstoken", password=pulumi.Output.secret(token)
        )
        self.builds = {image: self._image(name, image, settings.stack, login) for image in WORKLOAD_IMAGES}
        self.images: dict[str, pulumi.Output[str]] = {
            image: build.ref for image, build in self.builds.items()
        }
        self.register_outputs({"url": self.url, "images": self.images})

    def _image(
        self, name: str, image: str, stack: str, login: docker_build.RegistryArgs
    ) -> docker_build.Image:
        return workload_image(
            f"{name}-{image}",
            TARGETS[image],
            pulumi.Output.concat(self.url, "/", image, ":", stack),
            login,
            pulumi.ResourceOptions(parent=self, depends_on=[self.repository]),
        )

"""The registry: Azure Container Registry (Entra ID only, no admin user) and the workload images by digest."""

from __future__ import annotations

import pulumi
import pulumi_docker_build as docker_build
from pulumi_azure_native import containerregistry

from infra.azure.site import Site, grant
from infra.platform import WORKLOAD_IMAGES, workload_image

# Dockerfile target per workload image; the Azure function image runs the Functions host.
TARGETS = {"train": "train", "serve": "serve", "function": "function-azure"}


class Registry(pulumi.ComponentResource):
    """A private registry; images are built on `up` only (never in preview) and referenced by digest.

    With the admin user off there is no registry password: the deployer gets AcrPush on this registry and
    pushes with its own Entra ID login (`az acr login --name <registry>`, which docker-build reads from
    the Docker credential store); trainers and the function pull with their managed identities (AcrPull).
    """

    def __init__(self, name: str, site: Site, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:azure:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.registry = containerregistry.Registry(
            name,
            registry_name=site.unique_name("cr", 50),
            resource_group_name=site.group_name,
            location=site.location,
            sku=containerregistry.SkuArgs(
                name=containerregistry.SkuName.STANDARD
                if site.settings.is_prod
                else containerregistry.SkuName.BASIC
            ),
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            tags=site.tags,
            opts=child,
        )
        self.push_access = grant(f"{name}-push", site, site.deployer_id, "AcrPush", self.registry.id, self)
        self.registry_id: pulumi.Output[str] = self.registry.id
        self.login_server: pulumi.Output[str] = self.registry.login_server
        self.url = self.login_server
        self.builds = {image: self._image(name, image, site.settings.stack) for image in WORKLOAD_IMAGES}
        self.images: dict[str, pulumi.Output[str]] = {
            image: build.ref for image, build in self.builds.items()
        }
        self.register_outputs({"url": self.url, "images": self.images})

    def _image(self, name: str, image: str, stack: str) -> docker_build.Image:
        return workload_image(
            f"{name}-{image}",
            TARGETS[image],
            pulumi.Output.concat(self.login_server, "/cloud-ai/", image, ":", stack),
            None,
            pulumi.ResourceOptions(parent=self, depends_on=[self.push_access]),
        )

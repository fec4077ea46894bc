"""The inference endpoint: a Cloud Run service running the function-gcp image (functions-framework on 8080).

Cloud Run, not Cloud Functions: a function gen2 is deployed from source and built by Cloud Build, while
cloud-ai ships a prebuilt image from Artifact Registry, which is what Cloud Run serves (and what gen2
functions run on underneath). One request per instance, as a function gets, so `maxConcurrency` instances
serve `maxConcurrency` requests at once. Only authenticated callers unless the stack says `public`.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import Settings
from infra.gcp.identity import service_account
from infra.gcp.registry import Registry
from infra.gcp.store import ModelStore
from infra.platform import labels

PORT = 8080
# Cloud Run's CPU floor per memory size: more than 4 GiB needs 2 vCPUs, more than 8 GiB needs 4.
CPU_FOR_MEMORY_MB = ((4096, "1"), (8192, "2"), (32768, "4"))


def cpu_for(memory_mb: int) -> str:
    """The fewest vCPUs Cloud Run accepts with this much memory."""
    return next(cpu for limit, cpu in CPU_FOR_MEMORY_MB if memory_mb <= limit)


def model_read_condition(bucket: str, model_name: str) -> str:
    """CEL: read objects under models/<name>/ and list only with that prefix (listing is a bucket call)."""
    prefix = f"models/{model_name}/"
    return (
        f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}")'
        f' || (resource.type == "storage.googleapis.com/Bucket"'
        f' && api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("{prefix}"))'
    )


class Endpoint(pulumi.ComponentResource):
    """The predictor behind HTTPS, scaled to zero, reading one model's prefix of the store and no more."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        store: ModelStore,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:gcp:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        model = settings.workload.model_name
        self.account = service_account(
            name, settings, "endpoint", f"Endpoint: read models/{model}/ only", self
        )
        self.model_read = gcp.storage.BucketIAMMember(
            f"{name}-model-read",
            bucket=store.bucket.name,
            role="roles/storage.objectViewer",
            member=self.account.member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title=f"models-{model}-only",
                description=f"objects under models/{model}/ of this bucket",
                expression=store.bucket.name.apply(lambda bucket: model_read_condition(bucket, model)),
            ),
            opts=child,
        )
        self.service = gcp.cloudrunv2.Service(
            name,
            location=settings.location.region,
            ingress="INGRESS_TRAFFIC_ALL",
            invoker_iam_disabled=False,
            deletion_protection=settings.is_prod,
            template=self._template(settings, store, registry),
            labels=labels(settings),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.model_read]),
        )
        self.public_invoker = (
            gcp.cloudrunv2.ServiceIamMember(
                f"{name}-public",
                project=self.service.project,
                location=self.service.location,
                name=self.service.name,
                role="roles/run.invoker",
                member="allUsers",
                opts=child,
            )
            if settings.endpoint.public
            else None
        )
        self.url: pulumi.Output[str] = self.service.uri
        self.register_outputs({"url": self.url})

    def _template(
        self, settings: Settings, store: ModelStore, registry: Registry
    ) -> gcp.cloudrunv2.ServiceTemplateArgs:
        endpoint = settings.endpoint
        return gcp.cloudrunv2.ServiceTemplateArgs(
            service_account=self.account.email,
            timeout=f"{endpoint.timeout_seconds}s",
            max_instance_request_concurrency=1,
            scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(
                min_instance_count=0, max_instance_count=endpoint.max_concurrency
            ),
            containers=[
                gcp.cloudrunv2.ServiceTemplateContainerArgs(
                    image=registry.images["function"],
                    ports=gcp.cloudrunv2.ServiceTemplateContainerPortsArgs(container_port=PORT),
                    envs=[
                        gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(name="MODEL_STORE", value=store.url),
                        gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(
                            name="MODEL_NAME", value=settings.workload.model_name
                        ),
                    ],
                    resources=gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(
                        limits={"memory": f"{endpoint.memory_mb}Mi", "cpu": cpu_for(endpoint.memory_mb)},
                        cpu_idle=True,
                    ),
                )
            ],
            labels=labels(settings),
        )

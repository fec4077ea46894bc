"""The inference endpoint: the function-azure image on a Linux Elastic Premium plan, reading one model."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights, storage, web

from infra.azure.registry import Registry
from infra.azure.site import Site, grant
from infra.azure.store import ModelStore
from infra.config import Endpoint as EndpointSettings

# Elastic Premium sizes by memory per instance (MB): the smallest that holds `endpoint.memoryMb`.
# Premium, not Flex Consumption: Flex does not run custom containers, and the predictor ships as one.
PLANS = (("EP1", 3584), ("EP2", 7168), ("EP3", 14336))
MAX_BURST = 100
LOG_RETENTION_DAYS = 30


def plan_sku(memory_mb: int) -> str:
    """The Elastic Premium SKU whose instances have at least MEMORY_MB (EP3 beyond)."""
    return next((sku for sku, memory in PLANS if memory_mb <= memory), PLANS[-1][0])


def function_timeout(seconds: int) -> str:
    """host.json's functionTimeout format (hh:mm:ss)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def model_read_condition(model_name: str) -> str:
    """ABAC: the reader role applies only to blobs under models/<name>/ (reads) and listings of that prefix.

    The endpoint cannot read datasets, checkpoints or other models in the same container.
    """
    path = f"models/{model_name}/"
    read = "ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'}"
    blobs = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
    return (
        f"((!({read} AND NOT SubOperationMatches{{'Blob.List'}}))"
        f" OR (@Resource[{blobs}:path] StringStartsWith '{path}'))"
        f" AND ((!({read} AND SubOperationMatches{{'Blob.List'}}))"
        f" OR (@Request[{blobs}:prefix] StringStartsWith 'models/{model_name}'))"
    )


class Endpoint(pulumi.ComponentResource):
    """A Linux function app running the predictor container, with its own identity, logs and metrics.

    Callers need a function key (the app's HTTP trigger is function-level) unless `endpoint.public`. The
    app pulls its image and reads its model with its system-assigned identity; the Functions host keeps
    its keys and leases in a small storage account of its own, so the model store grants read only.
    """

    def __init__(
        self,
        name: str,
        site: Site,
        store: ModelStore,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:azure:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = site.settings
        self.workspace = operationalinsights.Workspace(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            sku={"name": "PerGB2018"},
            retention_in_days=LOG_RETENTION_DAYS,
            tags=site.tags,
            opts=child,
        )
        self.insights = applicationinsights.Component(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            kind="web",
            application_type="web",
            workspace_resource_id=self.workspace.id,
            ingestion_mode="LogAnalytics",
            disable_local_auth=True,
            tags=site.tags,
            opts=child,
        )
        self.host_storage = storage.StorageAccount(
            f"{name}-host",
            account_name=site.unique_name("fn", 24),
            resource_group_name=site.group_name,
            location=site.location,
            kind="StorageV2",
            sku={"name": "Standard_LRS"},
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            tags=site.tags,
            opts=child,
        )
        self.plan = web.AppServicePlan(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            kind="elastic",
            reserved=True,
            sku={"name": plan_sku(settings.endpoint.memory_mb), "tier": "ElasticPremium"},
            maximum_elastic_worker_count=min(settings.endpoint.max_concurrency, MAX_BURST),
            tags=site.tags,
            opts=child,
        )
        self.app = web.WebApp(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            kind="functionapp,linux,container",
            server_farm_id=self.plan.id,
            https_only=True,
            client_cert_enabled=False,
            identity={"type": "SystemAssigned"},
            site_config={
                "linux_fx_version": pulumi.Output.concat("DOCKER|", registry.images["function"]),
                "acr_use_managed_identity_creds": True,
                "min_tls_version": "1.2",
                "scm_min_tls_version": "1.2",
                "ftps_state": "Disabled",
                "http20_enabled": True,
                "function_app_scale_limit": min(settings.endpoint.max_concurrency, MAX_BURST),
                "app_settings": _app_settings(site, settings.endpoint, store, registry, self),
            },
            tags=site.tags,
            opts=child,
        )
        for kind, policy in (("scm", web.WebAppScmAllowed), ("ftp", web.WebAppFtpAllowed)):
            policy(f"{name}-no-{kind}-basic-auth", name=self.app.name, resource_group_name=site.group_name,
                   allow=False, opts=child)  # fmt: skip
        principal = self.app.identity.apply(lambda i: i.principal_id if i else "")
        self.model_access = grant(
            f"{name}-model",
            site,
            principal,
            "Storage Blob Data Reader",
            store.container_id,
            self,
            condition=model_read_condition(settings.workload.model_name),
        )
        self.host_access = grant(
            f"{name}-host", site, principal, "Storage Blob Data Owner", self.host_storage.id, self
        )
        self.pull_access = grant(f"{name}-pull", site, principal, "AcrPull", registry.registry_id, self)
        self.telemetry_access = grant(
            f"{name}-telemetry", site, principal, "Monitoring Metrics Publisher", self.insights.id, self
        )
        self.host: pulumi.Output[str] = self.app.default_host_name
        self.url = pulumi.Output.concat("https://", self.host)
        self.app_id: pulumi.Output[str] = self.app.id
        self.insights_id: pulumi.Output[str] = self.insights.id
        self.register_outputs({"url": self.url, "app_id": self.app_id, "insights_id": self.insights_id})


def _app_settings(
    site: Site, endpoint: EndpointSettings, store: ModelStore, registry: Registry, parent: Endpoint
) -> list[dict[str, pulumi.Input[str]]]:
    """The app's environment: the workload's MODEL_STORE/MODEL_NAME, and identity-based host connections."""
    values: dict[str, pulumi.Input[str]] = {
        "FUNCTIONS_EXTENSION_VERSION": "~4",
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage__accountName": parent.host_storage.name,
        "AzureFunctionsJobHost__functionTimeout": function_timeout(endpoint.timeout_seconds),
        "WEBSITES_ENABLE_APP_SERVICE_STORAGE": "false",
        "WEBSITES_PORT": "8080",
        "DOCKER_REGISTRY_SERVER_URL": pulumi.Output.concat("https://", registry.login_server),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": parent.insights.connection_string,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        "FUNCTION_AUTH_LEVEL": "anonymous" if endpoint.public else "function",
        "MODEL_STORE": store.url,
        "MODEL_NAME": site.settings.workload.model_name,
        "AZURE_STORAGE_ACCOUNT_NAME": store.account_name,
    }
    return [{"name": key, "value": value} for key, value in values.items()]

"""The model store: a private, identity-only, versioned storage account with one blob container."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import storage

from infra.azure.site import Site

CONTAINER = "store"
CHECKPOINT_DAYS = 30
OLD_VERSION_DAYS = 30


def soft_delete_days(prod: bool) -> int:
    """How long deleted blobs and containers stay recoverable: a week in dev, a month in prod."""
    return 30 if prod else 7


class ModelStore(pulumi.ComponentResource):
    """Datasets, checkpoints and models in one private container, reachable only with Entra ID identities.

    Shared-key access is off, so every reader and writer is a managed identity with a role on the
    container: no account key exists to leak. Data is encrypted at rest twice (service and infrastructure
    layers, Microsoft-managed keys).
    """

    def __init__(self, name: str, site: Site, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:azure:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prod = site.settings.is_prod
        self.account = storage.StorageAccount(
            name,
            account_name=site.unique_name("st", 24),
            resource_group_name=site.group_name,
            location=site.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_ZRS if prod else storage.SkuName.STANDARD_LRS),
            access_tier=storage.AccessTier.HOT,
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            allow_cross_tenant_replication=False,
            encryption=storage.EncryptionArgs(
                key_source=storage.KeySource.MICROSOFT_STORAGE,
                require_infrastructure_encryption=True,
                services=storage.EncryptionServicesArgs(
                    blob=storage.EncryptionServiceArgs(enabled=True, key_type=storage.KeyType.ACCOUNT)
                ),
            ),
            tags=site.tags,
            opts=child,
        )
        days = soft_delete_days(prod)
        self.blob_service = storage.BlobServiceProperties(
            name,
            account_name=self.account.name,
            resource_group_name=site.group_name,
            blob_services_name="default",
            is_versioning_enabled=True,
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=days),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=days),
            opts=child,
        )
        self.container = storage.BlobContainer(
            name,
            account_name=self.account.name,
            resource_group_name=site.group_name,
            container_name=CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]),
        )
        self.lifecycle = storage.ManagementPolicy(
            name,
            account_name=self.account.name,
            resource_group_name=site.group_name,
            management_policy_name="default",
            policy=lifecycle_policy(),
            opts=child,
        )
        self.account_name: pulumi.Output[str] = self.account.name
        self.container_id: pulumi.Output[str] = self.container.id
        self.url = pulumi.Output.concat("az://", self.container.name)
        self.register_outputs(
            {"url": self.url, "account_name": self.account_name, "container_id": self.container_id}
        )


def lifecycle_policy() -> storage.ManagementPolicySchemaArgs:
    """Old checkpoints go after CHECKPOINT_DAYS (a finished run exports a model); superseded versions of
    any blob after OLD_VERSION_DAYS, so versioning protects against mistakes without keeping everything."""
    block_blobs = ["blockBlob"]
    return storage.ManagementPolicySchemaArgs(
        rules=[
            storage.ManagementPolicyRuleArgs(
                name="expire-checkpoints",
                enabled=True,
                type=storage.RuleType.LIFECYCLE,
                definition=storage.ManagementPolicyDefinitionArgs(
                    filters=storage.ManagementPolicyFilterArgs(
                        blob_types=block_blobs, prefix_match=[f"{CONTAINER}/checkpoints/"]
                    ),
                    actions=storage.ManagementPolicyActionArgs(
                        base_blob=storage.ManagementPolicyBaseBlobArgs(
                            delete=storage.DateAfterModificationArgs(
                                days_after_modification_greater_than=CHECKPOINT_DAYS
                            )
                        ),
                    ),
                ),
            ),
            storage.ManagementPolicyRuleArgs(
                name="expire-old-versions",
                enabled=True,
                type=storage.RuleType.LIFECYCLE,
                definition=storage.ManagementPolicyDefinitionArgs(
                    filters=storage.ManagementPolicyFilterArgs(blob_types=block_blobs),
                    actions=storage.ManagementPolicyActionArgs(
                        version=storage.ManagementPolicyVersionArgs(
                            delete=storage.DateAfterCreationArgs(
                                days_after_creation_greater_than=OLD_VERSION_DAYS
                            )
                        ),
                    ),
                ),
            ),
        ]
    )

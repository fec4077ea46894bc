"""The model store: one private, versioned GCS bucket for datasets, checkpoints and exported models."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from infra.config import Settings
from infra.platform import labels

# Checkpoints only matter while a run can still resume; old ones are deleted, not archived.
CHECKPOINT_DAYS = {"dev": 14, "prod": 60}
# Overwritten or deleted objects stay recoverable this long (versioning), then go.
NONCURRENT_DAYS = {"dev": 7, "prod": 30}


def lifecycle_rules(environment: str) -> list[gcp.storage.BucketLifecycleRuleArgs]:
    """Expire old checkpoints and noncurrent versions; drop abandoned multipart uploads."""
    return [
        gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                age=CHECKPOINT_DAYS[environment], matches_prefixes=["checkpoints/"]
            ),
        ),
        gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                days_since_noncurrent_time=NONCURRENT_DAYS[environment], with_state="ARCHIVED"
            ),
        ),
        gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type="AbortIncompleteMultipartUpload"),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=1),
        ),
    ]


class ModelStore(pulumi.ComponentResource):
    """Private (uniform access, public access prevented), encrypted at rest by Google, versioned storage."""

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:gcp:ModelStore", name, None, opts)
        self.bucket = gcp.storage.Bucket(
            name,
            location=settings.location.region,
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            lifecycle_rules=lifecycle_rules(settings.environment),
            force_destroy=not settings.is_prod,
            labels=labels(settings),
            opts=pulumi.ResourceOptions(parent=self, protect=settings.is_prod),
        )
        self.bucket_name: pulumi.Output[str] = self.bucket.name
        self.url: pulumi.Output[str] = self.bucket.name.apply(lambda bucket: f"gs://{bucket}")
        self.register_outputs({"bucket_name": self.bucket_name, "url": self.url})

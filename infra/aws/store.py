"""The model store: one private, encrypted, versioned S3 bucket holding datasets, checkpoints and models."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.config import Settings

CHECKPOINT_DAYS = 30
NONCURRENT_VERSION_DAYS = 30


class ModelStore(pulumi.ComponentResource):
    """S3 bucket (the store root, `s3://<bucket>`): no public access, TLS only, SSE-KMS with a bucket key.

    Versioning keeps an overwritten or deleted model recoverable for a while; lifecycle rules keep the
    bill flat by expiring old checkpoints (resumable state, useless once a run has exported) and
    noncurrent versions.
    """

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:aws:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(name, force_destroy=not settings.is_prod, tags=settings.tags, opts=child)
        self.public_access = aws.s3.BucketPublicAccessBlock(
            name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.versioning = aws.s3.BucketVersioning(
            name,
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-old-checkpoints",
                    "status": "Enabled",
                    "filter": {"prefix": "checkpoints/"},
                    "expiration": {"days": CHECKPOINT_DAYS},
                },
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.policy = aws.s3.BucketPolicy(
            name,
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(tls_only_policy),
            # A policy put before the public access block exists can be refused as public by S3.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access]),
        )
        self.url = self.bucket.bucket.apply(lambda bucket: f"s3://{bucket}")
        self.register_outputs({"url": self.url, "bucket": self.bucket.bucket, "arn": self.bucket.arn})


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request that does not arrive over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )

"""AWS model store and registry: private encrypted versioned bucket, immutable scanned repository, images."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from infra.aws.registry import KEEP_IMAGES, build_inputs_hash
from infra.mocks import Declared
from tests.infra.conftest import stack

STACKS = ["aws-dev", "aws-prod"]


def one(name: str, type_token: str) -> Declared:
    (resource,) = stack(name).of_type(type_token)
    return resource


@pytest.mark.parametrize("name", STACKS)
def test_bucket_blocks_all_public_access(name: str) -> None:
    block = one(name, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    bucket = one(name, "aws:s3/bucket:Bucket")

    assert block.inputs["bucket"] == bucket.id
    for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block.inputs[key] is True, key


@pytest.mark.parametrize("name", STACKS)
def test_bucket_is_versioned_and_kms_encrypted_with_a_bucket_key(name: str) -> None:
    versioning = one(name, "aws:s3/bucketVersioning:BucketVersioning")
    encryption = one(
        name, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )

    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    assert encryption.inputs["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}, "bucketKeyEnabled": True}
    ]


@pytest.mark.parametrize("name", STACKS)
def test_bucket_policy_denies_plain_http(name: str) -> None:
    policy = json.loads(one(name, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    arn = one(name, "aws:s3/bucket:Bucket").state["arn"]

    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Resource"] == [arn, f"{arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("name", STACKS)
def test_lifecycle_expires_old_checkpoints_and_noncurrent_versions(name: str) -> None:
    rules = {
        r["id"]: r
        for r in one(name, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    }

    assert rules["expire-old-checkpoints"]["filter"] == {"prefix": "checkpoints/"}
    assert rules["expire-old-checkpoints"]["expiration"]["days"] == 30
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert all(rule["status"] == "Enabled" for rule in rules.values())


def test_only_dev_buckets_and_repositories_can_be_destroyed_with_content() -> None:
    assert one("aws-dev", "aws:s3/bucket:Bucket").inputs["forceDestroy"] is True
    assert one("aws-prod", "aws:s3/bucket:Bucket").inputs["forceDestroy"] is False
    assert one("aws-dev", "aws:ecr/repository:Repository").inputs["forceDelete"] is True
    assert one("aws-prod", "aws:ecr/repository:Repository").inputs["forceDelete"] is False


@pulumi.runtime.test
def test_store_url_is_the_bucket() -> pulumi.Output[None]:
    store = stack("aws-dev").program["deployment"].store

    def check(values: list[str]) -> None:
        url, bucket = values
        assert url == f"s3://{bucket}"

    return pulumi.Output.all(store.url, store.bucket.bucket).apply(check)


@pytest.mark.parametrize("name", STACKS)
def test_repository_scans_on_push_with_immutable_tags_and_keeps_the_newest_images(name: str) -> None:
    repository = one(name, "aws:ecr/repository:Repository")
    lifecycle = json.loads(one(name, "aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])

    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
    assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    (rule,) = lifecycle["rules"]
    assert rule["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": KEEP_IMAGES,
    }
    assert rule["action"] == {"type": "expire"}


@pytest.mark.parametrize("name", STACKS)
def test_images_build_every_target_from_the_workload_dockerfile_into_the_repository(name: str) -> None:
    run = stack(name)
    registry_url = run.outputs["registryUrl"]
    version = build_inputs_hash()
    builds = {r.inputs["target"]: r for r in run.of_type("docker-build:index:Image")}

    assert set(builds) == {"train", "serve", "function-aws"}
    for target, build in builds.items():
        assert Path(build.inputs["context"]["location"]) == Path(__file__).resolve().parents[2]
        assert build.inputs["dockerfile"]["location"].endswith("workload/Dockerfile")
        assert build.inputs["push"] is True
        assert build.inputs["buildOnPreview"] is False
        assert build.inputs["platforms"] == ["linux/amd64"]
        assert build.inputs["tags"] == [f"{registry_url}:{target}-{version}"]
        (login,) = build.inputs["registries"]
        assert login["address"] == registry_url.split("/")[0]
        assert login["username"] == "AWS"


def test_build_inputs_hash_changes_with_the_sources(tmp_path: Path) -> None:
    (tmp_path / "workload").mkdir()
    (tmp_path / "workload" / "train.py").write_text("epochs = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    before = build_inputs_hash(tmp_path)
    (tmp_path / "workload" / "__pycache__").mkdir()
    (tmp_path / "workload" / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")

    assert build_inputs_hash(tmp_path) == before
    (tmp_path / "workload" / "train.py").write_text("epochs = 2\n")
    assert build_inputs_hash(tmp_path) != before

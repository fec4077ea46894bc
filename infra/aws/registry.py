"""The registry: a private ECR repository, and the workload images built into it from workload/Dockerfile."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra.config import Settings
from infra.platform import REPO_ROOT, WORKLOAD_IMAGES, workload_image

BUILD_INPUTS = ("workload", "pyproject.toml")
TARGETS = {"train": "train", "serve": "serve", "function": "function-aws"}
KEEP_IMAGES = 10 * len(WORKLOAD_IMAGES)


class Registry(pulumi.ComponentResource):
    """ECR repository (immutable tags, scan on push, the last KEEP_IMAGES kept) holding every workload image.

    Tags are `<target>-<hash of the build inputs>`: immutable tags never collide, unchanged sources give
    no new image, and everything downstream uses the pushed digest (`images[...]`), never a tag.
    """

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:aws:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            name,
            name=name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=not settings.is_prod,
            tags=settings.tags,
            opts=child,
        )
        self.lifecycle = aws.ecr.LifecyclePolicy(
            name, repository=self.repository.name, policy=lifecycle_policy(KEEP_IMAGES), opts=child
        )
        self.url = self.repository.repository_url
        self.host = self.url.apply(lambda url: url.split("/", 1)[0])
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        credentials = docker_build.RegistryArgs(
            address=self.host, username=token.user_name, password=token.password
        )
        version = build_inputs_hash()
        self.builds = {
            image: workload_image(
                f"{name}-{image}",
                TARGETS[image],
                self.url.apply(lambda url, target=TARGETS[image]: f"{url}:{target}-{version}"),
                credentials,
                child,
            )
            for image in WORKLOAD_IMAGES
        }
        self.images: dict[str, pulumi.Output[str]] = {
            image: pulumi.Output.concat(self.url, "@", build.digest) for image, build in self.builds.items()
        }
        self.register_outputs({"url": self.url, "images": self.images})


def lifecycle_policy(keep: int) -> str:
    """Expire all but the newest KEEP images (any tag state)."""
    rule = {
        "rulePriority": 1,
        "description": f"keep the newest {keep} images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
        "action": {"type": "expire"},
    }
    return json.dumps({"rules": [rule]})


def build_inputs_hash(root: Path = REPO_ROOT) -> str:
    """A short hash of every file the images are built from: the image tag's version part."""
    digest = hashlib.sha256()
    for top in BUILD_INPUTS:
        path = root / top
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]

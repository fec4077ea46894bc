"""The endpoint: a Lambda function from the function-aws image behind a Function URL."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.registry import Registry
from infra.aws.store import ModelStore
from infra.aws.trainer import assume_role_policy
from infra.config import Settings


class Endpoint(pulumi.ComponentResource):
    """Lambda (image package, reserved concurrency = endpoint.maxConcurrency) with an IAM-authenticated URL.

    The URL takes unsigned requests only when the stack sets `endpoint.public` (never in prod). The
    function can read its own model's prefix and write its own log group, nothing else.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        store: ModelStore,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:aws:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        endpoint = settings.endpoint
        self.log_group = aws.cloudwatch.LogGroup(
            name,
            name=f"/aws/lambda/{name}",
            retention_in_days=90 if settings.is_prod else 14,
            tags=settings.tags,
            opts=child,
        )
        self.role = aws.iam.Role(
            name,
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            tags=settings.tags,
            opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            name,
            role=self.role.id,
            policy=pulumi.Output.all(store.bucket.arn, self.log_group.arn).apply(
                lambda arns: json.dumps(endpoint_policy(arns[0], arns[1], settings.workload.model_name))
            ),
            opts=child,
        )
        identity = aws.get_caller_identity_output()
        function_arn = identity.account_id.apply(
            lambda account: f"arn:aws:lambda:{settings.location.region}:{account}:function:{name}"
        )
        self.pull_policy = aws.ecr.RepositoryPolicy(
            name,
            repository=registry.repository.name,
            policy=function_arn.apply(lambda arn: json.dumps(lambda_pull_policy(arn))),
            opts=child,
        )
        self.function = aws.lambda_.Function(
            name,
            name=name,
            package_type="Image",
            image_uri=registry.images["function"],
            architectures=["x86_64"],
            role=self.role.arn,
            memory_size=endpoint.memory_mb,
            timeout=endpoint.timeout_seconds,
            reserved_concurrent_executions=endpoint.max_concurrency,
            environment={"variables": {"MODEL_STORE": store.url, "MODEL_NAME": settings.workload.model_name}},
            logging_config={"log_format": "Text", "log_group": self.log_group.name},
            tags=settings.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policy, self.pull_policy]),
        )
        auth_type = "NONE" if endpoint.public else "AWS_IAM"
        self.function_url = aws.lambda_.FunctionUrl(
            name, function_name=self.function.name, authorization_type=auth_type, opts=child
        )
        self.public_permissions = self._public_permissions(name) if endpoint.public else []
        self.url = self.function_url.function_url
        self.register_outputs({"url": self.url, "functionName": self.function.name})

    def _public_permissions(self, name: str) -> list[aws.lambda_.Permission]:
        """An unauthenticated URL needs both grants to everyone, each limited to calls through the URL."""
        child = pulumi.ResourceOptions(parent=self)
        return [
            aws.lambda_.Permission(
                f"{name}-public-url",
                function=self.function.name,
                action="lambda:InvokeFunctionUrl",
                principal="*",
                function_url_auth_type="NONE",
                opts=child,
            ),
            aws.lambda_.Permission(
                f"{name}-public-invoke",
                function=self.function.name,
                action="lambda:InvokeFunction",
                principal="*",
                invoked_via_function_url=True,
                opts=child,
            ),
        ]


def endpoint_policy(bucket_arn: str, log_group_arn: str, model_name: str) -> dict[str, Any]:
    """Read models/<name>/ (to find and load the newest version) and write the function's own logs."""
    model = f"models/{model_name}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListModelVersions",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [model, f"{model}/*"]}},
            },
            {
                "Sid": "ReadModel",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{model}/*",
            },
            {
                "Sid": "OwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn}:*",
            },
        ],
    }


def lambda_pull_policy(function_arn: str) -> dict[str, Any]:
    """Let the Lambda service pull the function image from the repository, for this function only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LambdaPull",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Condition": {"StringLike": {"aws:sourceArn": function_arn}},
            }
        ],
    }

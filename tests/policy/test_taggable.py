"""common-tags knows every taggable type the stacks declare: checked against the provider SDKs' arguments,
so a new resource type with tags cannot slip past the rule unnoticed."""

from __future__ import annotations

import importlib
import inspect

import pytest

from infra.rules.hygiene import TAG_PROPERTY
from tests.policy.test_stacks import STACK_NAMES, stack

SDK_PACKAGES = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "azure-native": "pulumi_azure_native"}
# Where each provider's tags live, in order of preference. GCP `tags` are network tags, not labels, and a
# notification channel's `labels` are its settings (the email address): its labels are `user_labels`.
TAG_ARGUMENTS = {
    "aws": {"tags": "tags"},
    "azure-native": {"tags": "tags"},
    "gcp": {"user_labels": "userLabels", "labels": "labels"},
}


def tag_property(type_token: str) -> str | None:
    """The camelCase property the SDK class of TYPE_TOKEN takes its tags in, or None."""
    provider, module, name = type_token.split(":")
    package = importlib.import_module(
        f"{SDK_PACKAGES[provider]}.{module.split('/')[0].replace('lambda', 'lambda_')}"
    )
    parameters = inspect.signature(getattr(package, name)._internal_init).parameters
    return next((prop for arg, prop in TAG_ARGUMENTS[provider].items() if arg in parameters), None)


@pytest.mark.parametrize("name", STACK_NAMES)
def test_every_taggable_type_in_the_stack_is_checked(name: str) -> None:
    inputs, _, _ = stack(name)
    declared = {r.type for r in inputs if r.type.split(":")[0] in SDK_PACKAGES}
    assert {t: TAG_PROPERTY.get(t) for t in declared} == {t: tag_property(t) for t in declared}

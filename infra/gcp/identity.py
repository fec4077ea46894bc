"""Dedicated service accounts: one per workload role, so each grant can stay as narrow as its job."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_gcp as gcp

from infra.config import Settings
from infra.platform import resource_name

ACCOUNT_ID_MAX = 30


def account_id(settings: Settings, part: str) -> str:
    """`<project>-<stack>-<part>`, shortened with a stable hash to GCP's 30-character account-id limit."""
    full = resource_name(settings, part)
    if len(full) <= ACCOUNT_ID_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:6]
    return f"{full[: ACCOUNT_ID_MAX - 7].rstrip('-')}-{digest}"


def service_account(
    name: str, settings: Settings, part: str, purpose: str, parent: pulumi.Resource
) -> gcp.serviceaccount.Account:
    """A service account with no roles of its own; callers grant it exactly what it needs."""
    return gcp.serviceaccount.Account(
        name,
        account_id=account_id(settings, part),
        display_name=f"cloud-ai {settings.stack} {part}",
        description=purpose,
        opts=pulumi.ResourceOptions(parent=parent),
    )

"""Where every Azure resource of a stack goes (its resource group and subscription) and how access is granted.

The five components take a `Site` instead of bare settings: Azure needs the resource group and the
subscription (for built-in role ids and globally unique names) on nearly every resource.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization

from infra.config import Settings

# Built-in role ids, the same in every tenant
# (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLES = {
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
    "AcrPush": "8311e382-0749-4cb8-b61a-304f252e45ec",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}


@dataclass(frozen=True)
class Site:
    """The stack's settings, its resource group and the subscription it deploys into."""

    settings: Settings
    group_name: pulumi.Output[str]
    group_id: pulumi.Output[str]
    subscription_id: pulumi.Output[str]
    tenant_id: pulumi.Output[str]
    deployer_id: pulumi.Output[str]

    @property
    def location(self) -> str:
        return self.settings.location.region

    @property
    def tags(self) -> dict[str, str]:
        return self.settings.tags

    def role(self, role: str) -> pulumi.Output[str]:
        """The subscription-scoped id of a built-in role."""
        return self.subscription_id.apply(
            lambda s: f"/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{ROLES[role]}"
        )

    def unique_name(self, part: str, max_length: int) -> pulumi.Output[str]:
        """A lowercase alphanumeric name, unique per subscription and stack, for globally named services.

        Storage accounts and registries share one DNS namespace across Azure: the readable prefix comes from
        the project, stack and PART, the 8-character suffix from the subscription, so two subscriptions
        deploying the same stack never collide and re-running the program never renames anything.
        """
        settings = self.settings
        readable = re.sub(r"[^a-z0-9]", "", f"{settings.project}{settings.stack}{part}".lower())
        return self.subscription_id.apply(
            lambda s: (
                readable[: max_length - 8]
                + hashlib.sha256(f"{s}/{settings.project}/{settings.stack}/{part}".encode()).hexdigest()[:8]
            )
        )


def grant(
    name: str,
    site: Site,
    principal_id: pulumi.Input[str],
    role: str | pulumi.Output[str],
    scope: pulumi.Input[str],
    parent: pulumi.Resource,
    condition: str | None = None,
) -> authorization.RoleAssignment:
    """Give a managed identity one role (a built-in's name or a role definition id) on exactly SCOPE.

    An ABAC CONDITION narrows it further (which blobs). principal_type is set so ARM does not look the
    principal up in Entra ID, which fails for identities created seconds before.
    """
    role_id = site.role(role) if isinstance(role, str) else role
    return authorization.RoleAssignment(
        name,
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=role_id,
        scope=scope,
        condition=condition,
        condition_version="2.0" if condition else None,
        description=f"cloud-ai {site.settings.stack}: {role if isinstance(role, str) else 'custom role'}",
        opts=pulumi.ResourceOptions(parent=parent),
    )

"""Hygiene: every taggable resource carries the common tags (GCP: labels), so every bill has an owner."""

from __future__ import annotations

from collections.abc import Mapping

from infra.rules.model import Resource, StackFacts, Violation

COMMON_TAGS = ("project", "stack", "owner", "cost-center", "managed-by")

# Resource types cloud-ai declares that accept tags, and the property that holds them. Kept honest by
# tests/policy/test_taggable.py, which checks every type the six stacks declare against the provider SDKs.
TAG_PROPERTY: dict[str, str] = {
    **dict.fromkeys(
        (
            "aws:s3/bucket:Bucket",
            "aws:ecr/repository:Repository",
            "aws:ec2/instance:Instance",
            "aws:ec2/spotInstanceRequest:SpotInstanceRequest",
            "aws:ec2/launchTemplate:LaunchTemplate",
            "aws:ec2/securityGroup:SecurityGroup",
            "aws:ec2/vpc:Vpc",
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "aws:ec2/subnet:Subnet",
            "aws:ec2/internetGateway:InternetGateway",
            "aws:ec2/routeTable:RouteTable",
            "aws:ec2/natGateway:NatGateway",
            "aws:ec2/eip:Eip",
            "aws:ec2/placementGroup:PlacementGroup",
            "aws:ebs/volume:Volume",
            "aws:iam/role:Role",
            "aws:iam/policy:Policy",
            "aws:iam/instanceProfile:InstanceProfile",
            "aws:lambda/function:Function",
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "aws:cloudwatch/logGroup:LogGroup",
            "aws:sns/topic:Topic",
            "aws:budgets/budget:Budget",
            "aws:kms/key:Key",
        ),
        "tags",
    ),
    **dict.fromkeys(
        (
            "gcp:storage/bucket:Bucket",
            "gcp:artifactregistry/repository:Repository",
            "gcp:compute/instance:Instance",
            "gcp:compute/instanceTemplate:InstanceTemplate",
            "gcp:cloudfunctionsv2/function:Function",
            "gcp:cloudrunv2/service:Service",
        ),
        "labels",
    ),
    **dict.fromkeys(
        (
            "gcp:monitoring/alertPolicy:AlertPolicy",
            "gcp:monitoring/notificationChannel:NotificationChannel",
        ),
        "userLabels",
    ),
    **dict.fromkeys(
        (
            "azure-native:resources:ResourceGroup",
            "azure-native:storage:StorageAccount",
            "azure-native:containerregistry:Registry",
            "azure-native:compute:VirtualMachine",
            "azure-native:compute:Disk",
            "azure-native:network:VirtualNetwork",
            "azure-native:network:NetworkSecurityGroup",
            "azure-native:network:NetworkInterface",
            "azure-native:network:PublicIPAddress",
            "azure-native:network:NatGateway",
            "azure-native:compute:ProximityPlacementGroup",
            "azure-native:applicationinsights:Workbook",
            "azure-native:managedidentity:UserAssignedIdentity",
            "azure-native:web:AppServicePlan",
            "azure-native:web:WebApp",
            "azure-native:insights:Component",
            "azure-native:applicationinsights:Component",
            "azure-native:operationalinsights:Workspace",
            "azure-native:monitor:MetricAlert",
            "azure-native:monitor:ActionGroup",
            "azure-native:monitor:ScheduledQueryRule",
            "azure-native:devtestlab:GlobalSchedule",
        ),
        "tags",
    ),
}


def common_tags(resource: Resource, facts: StackFacts) -> Violation | None:
    """project, stack, owner, cost-center and managed-by on every taggable resource (Settings.tags)."""
    prop = TAG_PROPERTY.get(resource.type)
    if prop is None:
        return None
    tags = resource.props.get(prop)
    present = tags if isinstance(tags, Mapping) else {}
    missing = [key for key in COMMON_TAGS if not present.get(key)]
    if not missing:
        return None
    fix = f"{prop} lack {', '.join(missing)}: pass {prop}=settings.tags (GCP: labels(settings))"
    return Violation("common-tags", f"{resource.name}: {fix}", resource.name)

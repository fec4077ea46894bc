"""Security rules: private encrypted storage, no admin ports open to the world, IMDSv2, encrypted disks,
no `*` on `*` grants, no public members, authenticated function endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.rules.model import Resource, StackFacts, Violation
from infra.rules.props import document, is_true, mappings, nested, strings

ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
WORLD = {"0.0.0.0/0", "::/0", "*", "internet", "any"}
PUBLIC_ACCESS_KEYS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
INVOKER_ROLES = {"roles/run.invoker", "roles/cloudfunctions.invoker"}
GCP_ADMIN_ROLES = {"roles/owner", "roles/editor"}
# Built-in Azure roles whose actions are `*`: Owner and Contributor.
AZURE_ADMIN_ROLE_IDS = {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c"}
AWS_ADMIN_POLICY = ":policy/AdministratorAccess"
AWS_POLICY_TYPES = {
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
}
AWS_INSTANCE_TYPES = {"aws:ec2/instance:Instance", "aws:ec2/spotInstanceRequest:SpotInstanceRequest"}
S3_BUCKET = "aws:s3/bucket:Bucket"
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
GCP_FUNCTION_PREFIXES = ("gcp:cloudfunctions", "gcp:cloudrun")
# The app setting that sets the Azure function's HTTP auth level (infra/azure/endpoint.py).
AZURE_AUTH_LEVEL = "FUNCTION_AUTH_LEVEL"
AZURE_AUTH_SETTINGS = {"azure-native:web:WebAppAuthSettingsV2", "azure-native:web:WebAppAuthSettingsV2Slot"}


def _violation(rule: str, resource: Resource, fix: str) -> Violation:
    return Violation(rule, f"{resource.name}: {fix}", resource.name)


# storage-private ---------------------------------------------------------------------------------


def storage_private(resource: Resource, facts: StackFacts) -> Violation | None:
    """Buckets and storage accounts never serve objects to the public."""
    props, fix = resource.props, None
    if resource.type == S3_PUBLIC_ACCESS_BLOCK:
        missing = [key for key in PUBLIC_ACCESS_KEYS if not is_true(props.get(key))]
        fix = f"set {', '.join(missing)} to true" if missing else None
    elif resource.type in ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2"):
        fix = f"drop the public ACL {props.get('acl')!r}" if props.get("acl") in PUBLIC_ACLS else None
    elif resource.type == "gcp:storage/bucket:Bucket":
        problems = []
        if props.get("publicAccessPrevention") != "enforced":
            problems.append('set publicAccessPrevention="enforced"')
        if not is_true(props.get("uniformBucketLevelAccess")):
            problems.append("set uniformBucketLevelAccess=True")
        fix = "; ".join(problems) or None
    elif resource.type == "azure-native:storage:StorageAccount":
        public = props.get("allowBlobPublicAccess")
        fix = None if public is False or public == "false" else "set allowBlobPublicAccess=False"
    elif resource.type == "azure-native:storage:BlobContainer":
        access = props.get("publicAccess")
        fix = None if access in (None, "None") else f'set publicAccess="None" (not {access!r})'
    return _violation("storage-private", resource, fix) if fix else None


def s3_buckets_guarded(resources: Sequence[Resource], facts: StackFacts) -> list[Violation]:
    """AWS provider 7 declares a bucket's public access block and encryption apart: both must exist."""
    guarded = {
        kind: {str(r.props.get("bucket")) for r in resources if r.type == kind}
        for kind in (S3_PUBLIC_ACCESS_BLOCK, S3_ENCRYPTION)
    }
    violations = []
    for bucket in (r for r in resources if r.type == S3_BUCKET):
        names = {bucket.id, str(bucket.props.get("bucket")), str(bucket.props.get("id"))} - {"", "None"}
        missing = [kind.split(":")[-1] for kind, refs in guarded.items() if not names & refs]
        if missing:
            fix = f"add {' and '.join(missing)} with bucket=<this bucket>.id"
            violations.append(_violation("s3-buckets-guarded", bucket, fix))
    return violations


# storage-encrypted -------------------------------------------------------------------------------


def storage_encrypted(resource: Resource, facts: StackFacts) -> Violation | None:
    """Data at rest is encrypted and storage accepts HTTPS (TLS 1.2+) only; GCS always encrypts at rest."""
    props, fix = resource.props, None
    if resource.type == S3_ENCRYPTION:
        algorithms = {
            nested(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            for rule in mappings(props.get("rules"))
        }
        if not algorithms & SSE_ALGORITHMS:
            fix = 'add a rule with applyServerSideEncryptionByDefault.sseAlgorithm "aws:kms" or "AES256"'
    elif resource.type == "azure-native:storage:StorageAccount":
        problems = []
        if not is_true(props.get("enableHttpsTrafficOnly")):
            problems.append("set enableHttpsTrafficOnly=True")
        if props.get("minimumTlsVersion") not in ("TLS1_2", "TLS1_3"):
            problems.append('set minimumTlsVersion="TLS1_2"')
        fix = "; ".join(problems) or None
    return _violation("storage-encrypted", resource, fix) if fix else None


# no-open-admin-ports -----------------------------------------------------------------------------


def _covers(spec: object, port: int) -> bool:
    """Whether a port spec ("*", "22", "20-25", 22) includes PORT."""
    text = str(spec).strip()
    if text in ("*", "", "None"):
        return True
    low, _, high = text.partition("-")
    try:
        return float(low) <= port <= float(high or low)
    except ValueError:
        return False


def _ports_in_range(low: object, high: object, protocol: object) -> list[int]:
    if str(protocol).lower() in ("-1", "all"):
        return list(ADMIN_PORTS)
    if str(protocol).lower() not in ("tcp", "6"):
        return []
    return [p for p in ADMIN_PORTS if _covers(f"{low}-{high}", p)]


def _aws_open_ports(resource: Resource) -> list[int]:
    props = resource.props
    if resource.type == "aws:ec2/securityGroup:SecurityGroup":
        rules = [
            (
                r.get("fromPort"),
                r.get("toPort"),
                r.get("protocol"),
                strings(r.get("cidrBlocks")) + strings(r.get("ipv6CidrBlocks")),
            )
            for r in mappings(props.get("ingress"))
        ]
    elif resource.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        sources = strings(props.get("cidrBlocks")) + strings(props.get("ipv6CidrBlocks"))
        rules = [(props.get("fromPort"), props.get("toPort"), props.get("protocol"), sources)]
    elif resource.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        sources = strings(props.get("cidrIpv4")) + strings(props.get("cidrIpv6"))
        rules = [(props.get("fromPort"), props.get("toPort"), props.get("ipProtocol"), sources)]
    else:
        return []
    return [
        p
        for low, high, proto, sources in rules
        if WORLD & set(sources)
        for p in _ports_in_range(low, high, proto)
    ]


def _gcp_open_ports(resource: Resource) -> list[int]:
    props = resource.props
    if (
        resource.type != "gcp:compute/firewall:Firewall"
        or str(props.get("direction", "INGRESS")) != "INGRESS"
    ):
        return []
    if not WORLD & set(strings(props.get("sourceRanges"))):
        return []
    opened = []
    for allow in mappings(props.get("allows")):
        protocol, ports = str(allow.get("protocol", "")).lower(), strings(allow.get("ports"))
        if protocol in ("all", "tcp", "6"):
            opened += [
                p for p in ADMIN_PORTS if protocol == "all" or not ports or any(_covers(s, p) for s in ports)
            ]
    return opened


def _azure_rule_open_ports(rule: Mapping[str, Any]) -> list[int]:
    if str(rule.get("direction")) != "Inbound" or str(rule.get("access")) != "Allow":
        return []
    if str(rule.get("protocol", "*")).lower() not in ("*", "tcp"):
        return []
    sources = strings(rule.get("sourceAddressPrefix")) + strings(rule.get("sourceAddressPrefixes"))
    if not WORLD & {s.lower() for s in sources}:
        return []
    ports = strings(rule.get("destinationPortRange")) + strings(rule.get("destinationPortRanges"))
    return [p for p in ADMIN_PORTS if any(_covers(s, p) for s in ports)]


def _azure_open_ports(resource: Resource) -> list[int]:
    if resource.type == "azure-native:network:NetworkSecurityGroup":
        return [
            p for rule in mappings(resource.props.get("securityRules")) for p in _azure_rule_open_ports(rule)
        ]
    if resource.type == "azure-native:network:SecurityRule":
        return _azure_rule_open_ports(resource.props)
    return []


def no_open_admin_ports(resource: Resource, facts: StackFacts) -> Violation | None:
    """SSH and RDP are never reachable from 0.0.0.0/0 or ::/0: use SSM / IAP / Bastion instead."""
    opened = sorted(set(_aws_open_ports(resource) + _gcp_open_ports(resource) + _azure_open_ports(resource)))
    if not opened:
        return None
    names = " and ".join(f"{ADMIN_PORTS[p]} ({p})" for p in opened)
    fix = f"{names} open to the internet: restrict the source to a private range or use SSM/IAP/Bastion"
    return _violation("no-open-admin-ports", resource, fix)


# imdsv2-required / disks-encrypted ---------------------------------------------------------------


def imdsv2_required(resource: Resource, facts: StackFacts) -> Violation | None:
    """EC2 instances answer the metadata service only with session tokens (IMDSv2)."""
    launches = resource.type in AWS_INSTANCE_TYPES or resource.type == "aws:ec2/launchTemplate:LaunchTemplate"
    if launches and nested(resource.props, "metadataOptions", "httpTokens") != "required":
        return _violation("imdsv2-required", resource, 'set metadataOptions.httpTokens="required"')
    return None


def disks_encrypted(resource: Resource, facts: StackFacts) -> Violation | None:
    """EBS volumes are encrypted (GCP persistent disks and Azure managed disks always are)."""
    props, fix = resource.props, None
    if resource.type in AWS_INSTANCE_TYPES:
        disks = mappings(props.get("rootBlockDevice")) or [{}]
        disks += mappings(props.get("ebsBlockDevices"))
        fix = (
            None
            if all(is_true(d.get("encrypted")) for d in disks)
            else "set encrypted=True on every block device"
        )
    elif resource.type == "aws:ec2/launchTemplate:LaunchTemplate":
        disks = [nested(m, "ebs") or {} for m in mappings(props.get("blockDeviceMappings"))] or [{}]
        fix = (
            None
            if all(is_true(d.get("encrypted")) for d in disks)
            else 'set ebs.encrypted="true" in blockDeviceMappings'
        )
    elif resource.type == "aws:ebs/volume:Volume" and not is_true(props.get("encrypted")):
        fix = "set encrypted=True"
    return _violation("disks-encrypted", resource, fix) if fix else None


# no-wildcard-admin -------------------------------------------------------------------------------


def _allows_everything(policy: object) -> bool:
    for statement in mappings(document(policy).get("Statement")):
        actions, targets = strings(statement.get("Action")), strings(statement.get("Resource"))
        if statement.get("Effect") == "Allow" and "*" in actions and "*" in targets:
            return True
    return False


def _gcp_bindings(resource: Resource) -> list[tuple[str, list[str]]]:
    """(role, members) pairs of a GCP IAM member, binding or policy resource."""
    props, token = resource.props, resource.type.lower()
    if not resource.type.startswith("gcp:"):
        return []
    if "iammember" in token:
        return [(str(props.get("role")), strings(props.get("member")))]
    if "iambinding" in token:
        return [(str(props.get("role")), strings(props.get("members")))]
    if "iampolicy" in token:
        bindings = mappings(document(props.get("policyData")).get("bindings"))
        return [(str(b.get("role")), strings(b.get("members"))) for b in bindings]
    return []


def no_wildcard_admin(resource: Resource, facts: StackFacts) -> Violation | None:
    """No identity is granted every action on every resource: grant the actions the workload uses."""
    props, found = resource.props, ""
    if resource.type in AWS_POLICY_TYPES and _allows_everything(props.get("policy")):
        found = 'a statement allows Action "*" on Resource "*"'
    elif resource.type == "aws:iam/role:Role":
        if any(_allows_everything(p.get("policy")) for p in mappings(props.get("inlinePolicies"))):
            found = 'an inline policy allows Action "*" on Resource "*"'
        elif any(arn.endswith(AWS_ADMIN_POLICY) for arn in strings(props.get("managedPolicyArns"))):
            found = "AdministratorAccess is attached"
    elif resource.type.startswith("aws:iam/") and str(props.get("policyArn", "")).endswith(AWS_ADMIN_POLICY):
        found = "AdministratorAccess is attached"
    elif any(role in GCP_ADMIN_ROLES for role, _ in _gcp_bindings(resource)):
        found = "roles/owner or roles/editor is granted"
    elif resource.type == "azure-native:authorization:RoleAssignment":
        if str(props.get("roleDefinitionId", "")).rsplit("/", 1)[-1].lower() in AZURE_ADMIN_ROLE_IDS:
            found = "the Owner or Contributor role is assigned"
    elif resource.type == "azure-native:authorization:RoleDefinition" and any(
        "*" in strings(p.get("actions")) for p in mappings(props.get("permissions"))
    ):
        found = 'the role allows actions "*"'
    if not found:
        return None
    return _violation("no-wildcard-admin", resource, f"{found}: grant only the actions the workload needs")


def no_public_members(resource: Resource, facts: StackFacts) -> Violation | None:
    """allUsers / allAuthenticatedUsers get no role, except invoking a function (endpoint-authenticated)."""
    for role, members in _gcp_bindings(resource):
        public = PUBLIC_MEMBERS & set(members)
        if public and role not in INVOKER_ROLES:
            fix = f"{role} is granted to {', '.join(sorted(public))}: grant it to named principals"
            return _violation("no-public-members", resource, fix)
    return None


# endpoint-authenticated --------------------------------------------------------------------------


def _public_endpoint(resource: Resource) -> str:
    """How the resource lets anyone invoke the function, or '' when it does not."""
    props = resource.props
    if resource.type == "aws:lambda/functionUrl:FunctionUrl" and props.get("authorizationType") != "AWS_IAM":
        return f'authorizationType is {props.get("authorizationType")!r}, not "AWS_IAM"'
    if resource.type == "aws:lambda/permission:Permission" and props.get("principal") == "*":
        return 'a permission lets principal "*" invoke it'
    if resource.type.startswith(GCP_FUNCTION_PREFIXES):
        if is_true(props.get("invokerIamDisabled")):
            return "invokerIamDisabled is true"
        for role, members in _gcp_bindings(resource):
            if role in INVOKER_ROLES and PUBLIC_MEMBERS & set(members):
                return f"{role} is granted to allUsers"
    if resource.type == "azure-native:web:WebApp":
        settings = {
            str(s.get("name")): s.get("value") for s in mappings(nested(props, "siteConfig", "appSettings"))
        }
        if str(settings.get(AZURE_AUTH_LEVEL, "")).lower() == "anonymous":
            return f"{AZURE_AUTH_LEVEL} is anonymous (no function key needed)"
    required = is_true(nested(props, "globalValidation", "requireAuthentication"))
    if resource.type in AZURE_AUTH_SETTINGS and not required:
        return "globalValidation.requireAuthentication is not true"
    return ""


def endpoint_authenticated(resource: Resource, facts: StackFacts) -> Violation | None:
    """Function endpoints authenticate callers, unless a dev stack sets cloud-ai:endpoint.public: true."""
    how = _public_endpoint(resource)
    if not how or (facts.endpoint_public and not facts.is_prod):
        return None
    if facts.is_prod:
        fix = f"{how}: prod endpoints must authenticate callers"
    else:
        fix = f"{how}: require authentication, or set cloud-ai:endpoint.public: true in this dev stack"
    return _violation("endpoint-authenticated", resource, fix)

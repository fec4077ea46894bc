"""What the AWS provider computes for the resources and invokes cloud-ai uses.

Each entry returns the outputs the real provider fills in after create (ARNs with the right service
and shape, URLs, addresses, digests), so resources that read them are declared, not silently dropped.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from infra.mocks import CloudMocks, Computed

ACCOUNT = "123456789012"
AMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261120"


def default_outputs(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """Every AWS resource has an ARN and, when auto-named, a physical name with a random suffix."""
    physical = _physical(name, inputs)
    arn = f"arn:aws:mock:{mocks.region}:{ACCOUNT}:{physical}"
    return {"arn": arn, "name": physical, "tagsAll": inputs.get("tags"), "region": mocks.region}


def _physical(name: str, inputs: dict[str, Any]) -> str:
    from infra.mocks import short_hash

    return str(inputs.get("name") or f"{name}-{short_hash(name)}")


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _bucket(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    bucket = str(inputs.get("bucket") or _physical(name, {}))
    return {
        "bucket": bucket,
        "arn": f"arn:aws:s3:::{bucket}",
        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{bucket}.s3.{mocks.region}.amazonaws.com",
    }


def _repository(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    repo = _physical(name, inputs)
    return {
        "arn": f"arn:aws:ecr:{mocks.region}:{ACCOUNT}:repository/{repo}",
        "registryId": ACCOUNT,
        "repositoryUrl": f"{ACCOUNT}.dkr.ecr.{mocks.region}.amazonaws.com/{repo}",
    }


def _image(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """docker-build pushes and reports the manifest digest; `ref` is the first tag pinned to it."""
    digest = "sha256:" + hashlib.sha256(f"{name}/{inputs.get('target')}".encode()).hexdigest()
    tags = inputs.get("tags") or []
    ref = f"{tags[0].split(':')[0] if tags else name}@{digest}"
    return {"digest": digest, "ref": ref, "contextHash": _hex(name, length=64)}


def _ec2(prefix: str) -> Computed:
    def computed(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
        ident = f"{prefix}-{_hex(name)}"
        return {
            "arn": f"arn:aws:ec2:{mocks.region}:{ACCOUNT}:{_EC2_KIND[prefix]}/{ident}",
            "ownerId": ACCOUNT,
        }

    return computed


_EC2_KIND = {
    "vpc": "vpc",
    "subnet": "subnet",
    "igw": "internet-gateway",
    "eipalloc": "elastic-ip",
    "nat": "natgateway",
    "rtb": "route-table",
    "vpce": "vpc-endpoint",
    "sg": "security-group",
    "pg": "placement-group",
}


def _eip(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    octets = hashlib.sha256(name.encode()).digest()
    return {
        **_ec2("eipalloc")(name, inputs, mocks),
        "allocationId": f"eipalloc-{_hex(name)}",
        "publicIp": f"54.{octets[0]}.{octets[1]}.{octets[2]}",
    }


def _subnet(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {**_ec2("subnet")(name, inputs, mocks), "availabilityZoneId": "use1-az1"}


def _instance(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    ident = f"i-{_hex(name)}"
    return {
        "arn": f"arn:aws:ec2:{mocks.region}:{ACCOUNT}:instance/{ident}",
        "privateIp": inputs.get("privateIp") or "10.42.1.200",
        "privateDns": f"ip-{str(inputs.get('privateIp', '10.42.1.200')).replace('.', '-')}.ec2.internal",
        "instanceState": "running",
        "primaryNetworkInterfaceId": f"eni-{_hex(name)}",
    }


def _iam(kind: str) -> Computed:
    def computed(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
        physical = _physical(name, inputs)
        return {"arn": f"arn:aws:iam::{ACCOUNT}:{kind}/{physical}", "name": physical, "uniqueId": _hex(name)}

    return computed


def _log_group(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"arn": f"arn:aws:logs:{mocks.region}:{ACCOUNT}:log-group:{_physical(name, inputs)}"}


def _function(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    arn = f"arn:aws:lambda:{mocks.region}:{ACCOUNT}:function:{_physical(name, inputs)}"
    return {
        "arn": arn,
        "qualifiedArn": f"{arn}:$LATEST",
        "invokeArn": f"arn:aws:apigateway:{mocks.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
        "version": "$LATEST",
    }


def _function_url(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    url_id = _hex(name, length=32)
    return {"urlId": url_id, "functionUrl": f"https://{url_id}.lambda-url.{mocks.region}.on.aws/"}


def _topic(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"arn": f"arn:aws:sns:{mocks.region}:{ACCOUNT}:{_physical(name, inputs)}", "owner": ACCOUNT}


def _alarm(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    alarm = str(inputs.get("name") or _physical(name, {}))
    return {"arn": f"arn:aws:cloudwatch:{mocks.region}:{ACCOUNT}:alarm:{alarm}", "name": alarm}


def _dashboard(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    dashboard = inputs["dashboardName"]
    return {"dashboardArn": f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{dashboard}"}


def _budget(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"arn": f"arn:aws:budgets::{ACCOUNT}:budget/{_physical(name, inputs)}", "accountId": ACCOUNT}


COMPUTED: dict[str, Computed] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:ecr/repository:Repository": _repository,
    "docker-build:index:Image": _image,
    "aws:ec2/vpc:Vpc": _ec2("vpc"),
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/internetGateway:InternetGateway": _ec2("igw"),
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/natGateway:NatGateway": _ec2("nat"),
    "aws:ec2/routeTable:RouteTable": _ec2("rtb"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _ec2("vpce"),
    "aws:ec2/securityGroup:SecurityGroup": _ec2("sg"),
    "aws:ec2/placementGroup:PlacementGroup": _ec2("pg"),
    "aws:ec2/instance:Instance": _instance,
    "aws:iam/role:Role": _iam("role"),
    "aws:iam/instanceProfile:InstanceProfile": _iam("instance-profile"),
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:lambda/function:Function": _function,
    "aws:lambda/functionUrl:FunctionUrl": _function_url,
    "aws:sns/topic:Topic": _topic,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:budgets/budget:Budget": _budget,
}


def _instance_type_offerings(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    types = [v for f in args.get("filters", []) if f["name"] == "instance-type" for v in f["values"]]
    zones = [f"{mocks.region}{z}" for z in ("c", "a", "b")]
    return {
        "id": mocks.region,
        "instanceTypes": [t for t in types for _ in zones],
        "locations": zones,
        "locationTypes": ["availability-zone"] * len(zones),
    }


def _ami(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    ami = f"ami-{_hex(mocks.region, AMI_NAME)}"
    return {"id": ami, "imageId": ami, "name": AMI_NAME, "architecture": "x86_64", "ownerId": "898082745236"}


def _ecr_token(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    registry = args.get("registryId") or ACCOUNT
    return {
        "id": mocks.region,
        "registryId": registry,
        "userName": "AWS",
        "password": "mock-ecr-password",
        "authorizationToken": "QVdTOm1vY2stZWNyLXBhc3N3b3Jk",
        "proxyEndpoint": f"https://{registry}.dkr.ecr.{mocks.region}.amazonaws.com",
        "expiresAt": "2026-12-05T00:00:00Z",
    }


def _caller_identity(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {
        "id": ACCOUNT,
        "accountId": ACCOUNT,
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/pulumi",
        "userId": "AROAMOCK:pulumi",
    }


CALLS: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = {
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _instance_type_offerings,
    "aws:ec2/getAmi:getAmi": _ami,
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": _ecr_token,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
}

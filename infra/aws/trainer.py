"""The trainers: `nodes` GPU instances in a private subnet, each running infra/launch.py's startup script."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.registry import Registry
from infra.aws.store import ModelStore
from infra.config import Settings, Workload
from infra.launch import CWAGENT_NAMESPACE, LaunchSpec, startup_script
from infra.platform import WORKER_CIDR, worker_addresses

VPC_CIDR = "10.42.0.0/16"
PUBLIC_CIDR = "10.42.0.0/24"
DLAMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04)*"
SSM_CORE = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
ANYWHERE = "0.0.0.0/0"


class TrainerNetwork(pulumi.ComponentResource):
    """A VPC whose private subnet holds the workers' fixed addresses, with egress through one NAT gateway.

    NAT rather than interface endpoints: the trainers reach ECR, CloudWatch, SSM and the package
    mirrors (to add a missing container runtime); six interface endpoints cost more per hour than one
    NAT gateway. The free S3 gateway endpoint keeps dataset and model bytes off the NAT's per-GB charge.
    """

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cloud-ai:aws:TrainerNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = settings.tags
        region = settings.location.region
        offerings = aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[{"name": "instance-type", "values": [settings.trainer.instance_type]}],
        )
        self.zone = offerings.locations.apply(first_zone)
        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=VPC_CIDR,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={**tags, "Name": name},
            opts=child,
        )
        self.private_subnet = aws.ec2.Subnet(
            f"{name}-private",
            vpc_id=self.vpc.id,
            cidr_block=WORKER_CIDR,
            availability_zone=self.zone,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{name}-private"},
            opts=child,
        )
        public_subnet = aws.ec2.Subnet(
            f"{name}-public",
            vpc_id=self.vpc.id,
            cidr_block=PUBLIC_CIDR,
            availability_zone=self.zone,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{name}-public"},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(name, vpc_id=self.vpc.id, tags=tags, opts=child)
        address = aws.ec2.Eip(name, domain="vpc", tags=tags, opts=child)
        self.nat = aws.ec2.NatGateway(
            name,
            subnet_id=public_subnet.id,
            allocation_id=address.allocation_id,
            tags={**tags, "Name": name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": ANYWHERE, "gateway_id": gateway.id}],
            tags=tags,
            opts=child,
        )
        self.private_routes = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": ANYWHERE, "nat_gateway_id": self.nat.id}],
            tags=tags,
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public", subnet_id=public_subnet.id, route_table_id=public_routes.id, opts=child
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private",
            subnet_id=self.private_subnet.id,
            route_table_id=self.private_routes.id,
            opts=child,
        )
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[self.private_routes.id],
            tags=tags,
            opts=child,
        )
        self.security_group = aws.ec2.SecurityGroup(
            name,
            vpc_id=self.vpc.id,
            description="cloud-ai trainers: workers reach each other; out to HTTPS/HTTP only",
            ingress=[
                {"protocol": "-1", "from_port": 0, "to_port": 0, "self": True, "description": "workers"}
            ],
            egress=[
                {"protocol": "-1", "from_port": 0, "to_port": 0, "self": True, "description": "workers"},
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [ANYWHERE]},
                {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": [ANYWHERE]},
            ],
            tags=tags,
            opts=child,
        )
        self.register_outputs({"vpcId": self.vpc.id, "subnetId": self.private_subnet.id, "zone": self.zone})


def first_zone(zones: list[str]) -> str:
    """The first zone (in name order, so it is stable) that offers the instance type."""
    if not zones:
        raise ValueError("no availability zone of this region offers the trainer's instance type")
    return sorted(zones)[0]


class Trainers(pulumi.ComponentResource):
    """`trainer.nodes` GPU instances, spot or on-demand, reachable only through SSM Session Manager.

    Spot instances use a persistent request that stops on interruption: the root volume (with the
    done marker and the image) survives, EC2 starts the instance again when capacity returns, and the
    boot unit resumes training from the last checkpoint.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        store: ModelStore,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:aws:Trainers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        trainer = settings.trainer
        self.network = TrainerNetwork(f"{name}-net", settings, opts=child)
        self.role = aws.iam.Role(
            name,
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=settings.tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-ssm", role=self.role.name, policy_arn=SSM_CORE, opts=child)
        self.policy = aws.iam.RolePolicy(
            name,
            role=self.role.id,
            policy=pulumi.Output.all(store.bucket.arn, registry.repository.arn).apply(
                lambda arns: json.dumps(trainer_policy(arns[0], arns[1], settings.workload))
            ),
            opts=child,
        )
        self.profile = aws.iam.InstanceProfile(name, role=self.role.name, tags=settings.tags, opts=child)
        self.placement_group = (
            aws.ec2.PlacementGroup(name, strategy="cluster", tags=settings.tags, opts=child)
            if trainer.nodes > 1
            else None
        )
        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=["amazon"],
            filters=[
                {"name": "name", "values": [DLAMI_NAME]},
                {"name": "architecture", "values": ["x86_64"]},
                {"name": "state", "values": ["available"]},
            ],
        )
        self.addresses = worker_addresses(trainer.nodes)
        self.instances = [
            self._instance(f"{name}-{index}", settings, store, registry, ami.id, index)
            for index in range(trainer.nodes)
        ]
        self.ids = [instance.id for instance in self.instances]
        self.private_ips = [instance.private_ip for instance in self.instances]
        self.register_outputs({"ids": self.ids, "privateIps": self.private_ips})

    def _instance(
        self,
        name: str,
        settings: Settings,
        store: ModelStore,
        registry: Registry,
        ami: pulumi.Input[str],
        index: int,
    ) -> aws.ec2.Instance:
        trainer = settings.trainer
        user_data = pulumi.Output.all(registry.images["train"], registry.host, store.url).apply(
            lambda values: startup_script(
                LaunchSpec(
                    cloud="aws",
                    image=values[0],
                    registry=values[1],
                    store_url=values[2],
                    workload=settings.workload,
                    node_index=index,
                    worker_addresses=tuple(self.addresses),
                    idle_stop_minutes=trainer.idle_stop_minutes,
                )
            )
        )
        return aws.ec2.Instance(
            name,
            ami=ami,
            instance_type=trainer.instance_type,
            subnet_id=self.network.private_subnet.id,
            private_ip=self.addresses[index],
            vpc_security_group_ids=[self.network.security_group.id],
            iam_instance_profile=self.profile.name,
            placement_group=self.placement_group.name if self.placement_group else None,
            instance_market_options=spot_options() if trainer.spot else None,
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled"},
            root_block_device={
                "volume_size": trainer.disk_gb,
                "volume_type": "gp3",
                "encrypted": True,
                "delete_on_termination": True,
            },
            monitoring=True,
            instance_initiated_shutdown_behavior="stop",
            user_data=user_data,
            # A new image or config means a fresh node: its disk must not carry the old run's done marker.
            user_data_replace_on_change=True,
            tags={**settings.tags, "Name": name},
            volume_tags=settings.tags,
            # Amazon publishes a new Deep Learning AMI often; a new one must not replace a training node.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"]),
        )


def spot_options() -> dict[str, Any]:
    """A persistent spot request that stops (not terminates) the instance when capacity is reclaimed."""
    return {
        "market_type": "spot",
        "spot_options": {"spot_instance_type": "persistent", "instance_interruption_behavior": "stop"},
    }


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def trainer_policy(bucket_arn: str, repository_arn: str, workload: Workload) -> dict[str, Any]:
    """Exactly what training needs: read its dataset, write its model and checkpoints, pull, put metrics."""
    dataset = f"datasets/{workload.dataset}"
    model = f"models/{workload.model_name}"
    checkpoints = f"checkpoints/{workload.model_name}"
    prefixes = [p for prefix in (dataset, model, checkpoints) for p in (prefix, f"{prefix}/*")]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnPrefixes",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": prefixes}},
            },
            {
                "Sid": "ReadDataset",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{dataset}/*",
            },
            {
                "Sid": "WriteModelAndCheckpoints",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                "Resource": [f"{bucket_arn}/{model}/*", f"{bucket_arn}/{checkpoints}/*"],
            },
            {
                "Sid": "PullTrainImage",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": repository_arn,
            },
            {
                "Sid": "RegistryLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "PutGpuMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": CWAGENT_NAMESPACE}},
            },
        ],
    }

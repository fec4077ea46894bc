"""The trainers: `nodes` GPU VMs on a private subnet, each booting the shared startup script.

N1 machine types get their GPUs as guest accelerators; accelerator-optimized types (G2, A2, A3) come with
theirs attached by Compute Engine, so declaring them again is left out. Egress (registry, agent packages)
goes through Cloud NAT: no VM has an external IP, and nothing but the workers may reach a worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import Settings
from infra.gcp.identity import service_account
from infra.gcp.registry import Registry
from infra.gcp.store import ModelStore
from infra.launch import LaunchSpec, startup_script
from infra.platform import WORKER_CIDR, labels, worker_addresses
from infra.pricing import catalog

# Deep Learning VM (Ubuntu 22.04, CUDA 12.8) with the NVIDIA 570 driver preinstalled; Docker comes with it.
IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570"
ROLE_LABEL = {"role": "trainer"}
# What the Ops Agent needs to ship GPU metrics and logs from the VM.
AGENT_ROLES = ("roles/monitoring.metricWriter", "roles/logging.logWriter")


def attached_gpus(settings: Settings) -> list[gcp.compute.InstanceGuestAcceleratorArgs]:
    """Guest accelerators for machine types without built-in GPUs (N1); none for G2/A2/A3."""
    trainer = settings.trainer
    offer = catalog("gcp").instance(trainer.instance_type, settings.location.region)
    if offer is None or offer.gpus or not trainer.accelerator:
        return []
    return [
        gcp.compute.InstanceGuestAcceleratorArgs(type=trainer.accelerator, count=trainer.accelerator_count)
    ]


def scheduling(spot: bool) -> gcp.compute.InstanceSchedulingArgs:
    """GPUs cannot live-migrate: maintenance terminates them. Reclaimed Spot VMs stop and keep their disk."""
    if spot:
        return gcp.compute.InstanceSchedulingArgs(
            provisioning_model="SPOT",
            preemptible=True,
            automatic_restart=False,
            instance_termination_action="STOP",
            on_host_maintenance="TERMINATE",
        )
    return gcp.compute.InstanceSchedulingArgs(
        provisioning_model="STANDARD", automatic_restart=True, on_host_maintenance="TERMINATE"
    )


class Trainers(pulumi.ComponentResource):
    """GPU VMs with a least-privilege identity, private networking and the shared boot script."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        store: ModelStore,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:gcp:Trainers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.addresses = worker_addresses(settings.trainer.nodes)
        self._network(name, settings)
        self.account = service_account(
            name, settings, "trainer", "Trainer VMs: read/write the model store, pull images", self
        )
        self.grants = self._grants(name, settings, store, registry)
        self.placement = (
            gcp.compute.ResourcePolicy(
                name,
                region=settings.location.region,
                group_placement_policy=gcp.compute.ResourcePolicyGroupPlacementPolicyArgs(
                    collocation="COLLOCATED", vm_count=settings.trainer.nodes
                ),
                opts=child,
            )
            if settings.trainer.nodes > 1
            else None
        )
        self.peer_firewall = self._peer_firewall(name, settings)
        self.instances = [
            self._instance(name, settings, store, registry, index) for index in range(settings.trainer.nodes)
        ]
        self.ids: list[pulumi.Output[str]] = [instance.instance_id for instance in self.instances]
        self.private_ips: list[pulumi.Output[str]] = [
            instance.network_interfaces.apply(lambda nics: str(nics[0]["network_ip"]))
            for instance in self.instances
        ]
        self.register_outputs({"ids": self.ids, "private_ips": self.private_ips})

    def _network(self, name: str, settings: Settings) -> None:
        child = pulumi.ResourceOptions(parent=self)
        region = settings.location.region
        self.network = gcp.compute.Network(
            name, auto_create_subnetworks=False, routing_mode="REGIONAL", opts=child
        )
        self.subnet = gcp.compute.Subnetwork(
            name,
            network=self.network.id,
            region=region,
            ip_cidr_range=WORKER_CIDR,
            private_ip_google_access=True,
            opts=child,
        )
        self.router = gcp.compute.Router(name, network=self.network.id, region=region, opts=child)
        self.nat = gcp.compute.RouterNat(
            name,
            router=self.router.name,
            region=region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=self.subnet.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"]
                )
            ],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )

    def _grants(
        self, name: str, settings: Settings, store: ModelStore, registry: Registry
    ) -> Sequence[pulumi.CustomResource]:
        """Objects in this bucket only, images of this repository only, and the agent's write roles."""
        child = pulumi.ResourceOptions(parent=self)
        member = self.account.member
        grants: list[pulumi.CustomResource] = [
            gcp.storage.BucketIAMMember(
                f"{name}-store",
                bucket=store.bucket.name,
                role="roles/storage.objectUser",
                member=member,
                opts=child,
            ),
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-images",
                project=registry.repository.project,
                location=registry.repository.location,
                repository=registry.repository.name,
                role="roles/artifactregistry.reader",
                member=member,
                opts=child,
            ),
        ]
        grants += [
            gcp.projects.IAMMember(
                f"{name}-{role.split('.')[-1].lower()}",
                project=settings.location.project or "",
                role=role,
                member=member,
                opts=child,
            )
            for role in AGENT_ROLES
        ]
        return grants

    def _peer_firewall(self, name: str, settings: Settings) -> gcp.compute.Firewall | None:
        """Workers reach each other (gRPC and collective ops) by identity; nothing else gets in."""
        if settings.trainer.nodes < 2:
            return None
        return gcp.compute.Firewall(
            f"{name}-peers",
            network=self.network.id,
            direction="INGRESS",
            priority=1000,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp")],
            source_service_accounts=[self.account.email],
            target_service_accounts=[self.account.email],
            description="cloud-ai trainers talk to each other only",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _instance(
        self, name: str, settings: Settings, store: ModelStore, registry: Registry, index: int
    ) -> gcp.compute.Instance:
        trainer = settings.trainer
        script = pulumi.Output.all(registry.images["train"], store.url).apply(
            lambda values: startup_script(
                LaunchSpec(
                    cloud="gcp",
                    image=values[0],
                    registry=registry.host,
                    store_url=values[1],
                    workload=settings.workload,
                    node_index=index,
                    worker_addresses=tuple(self.addresses),
                    idle_stop_minutes=trainer.idle_stop_minutes,
                )
            )
        )
        return gcp.compute.Instance(
            f"{name}-{index}",
            machine_type=trainer.instance_type,
            zone=settings.location.zone,
            guest_accelerators=attached_gpus(settings) or None,
            scheduling=scheduling(trainer.spot),
            boot_disk=gcp.compute.InstanceBootDiskArgs(
                auto_delete=True,
                initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                    image=IMAGE, size=trainer.disk_gb, type="pd-balanced", labels=labels(settings)
                ),
            ),
            network_interfaces=[
                gcp.compute.InstanceNetworkInterfaceArgs(
                    subnetwork=self.subnet.id, network_ip=self.addresses[index], nic_type="GVNIC"
                )
            ],
            service_account=gcp.compute.InstanceServiceAccountArgs(
                email=self.account.email, scopes=["cloud-platform"]
            ),
            shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(
                # The DLVM's NVIDIA kernel modules are not signed for UEFI Secure Boot; vTPM and
                # integrity monitoring still measure every boot.
                enable_secure_boot=False,
                enable_vtpm=True,
                enable_integrity_monitoring=True,
            ),
            resource_policies=self.placement.self_link if self.placement else None,
            metadata={
                "startup-script": script,
                "enable-oslogin": "TRUE",
                "block-project-ssh-keys": "TRUE",
            },
            allow_stopping_for_update=True,
            labels={**labels(settings), **ROLE_LABEL},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.nat, *self.grants]),
        )

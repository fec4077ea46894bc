"""GPU trainers: private Spot or on-demand NC/ND VMs that run the shared startup script, then stop."""

from __future__ import annotations

import base64
import uuid

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pulumi_azure_native import authorization, compute, devtestlab, managedidentity, network

from infra.azure.registry import Registry
from infra.azure.site import Site, grant
from infra.azure.store import ModelStore
from infra.launch import LaunchSpec, startup_script
from infra.platform import TRAINING_PORT, WORKER_CIDR, resource_name, worker_addresses

NETWORK_CIDR = "10.42.0.0/16"
ADMIN_USER = "cloudai"
# Azure Ubuntu HPC image: Ubuntu 22.04 with the NVIDIA data-center driver, CUDA, Docker and the NVIDIA
# container toolkit preinstalled, so a node boots straight into `docker run --gpus all`.
IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}
# Spot max price -1: pay the current Spot price, capped at on-demand, and be evicted only for capacity.
# A cap from the catalog's (dated) Spot price would fail creation whenever the market sits above it.
SPOT_MAX_PRICE = -1.0
# DevTest Labs auto-shutdown: every evening, whatever the watchdog thinks; the owner is mailed before.
SHUTDOWN_TIME = "2300"
SHUTDOWN_NOTICE_MINUTES = 30
SELF_STOP_ACTIONS = [
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/deallocate/action",
]


class Trainers(pulumi.ComponentResource):
    """`nodes` GPU VMs on a private subnet; they reach the registry and store through a NAT gateway only."""

    def __init__(
        self,
        name: str,
        site: Site,
        store: ModelStore,
        registry: Registry,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("cloud-ai:azure:Trainers", name, None, opts)
        settings = site.settings
        self._child = pulumi.ResourceOptions(parent=self)
        self.subnet = self._network(name, site)
        self.identity = managedidentity.UserAssignedIdentity(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            tags=site.tags,
            opts=self._child,
        )
        principal = self.identity.principal_id
        self.store_access = grant(
            f"{name}-store", site, principal, "Storage Blob Data Contributor", store.container_id, self
        )
        self.pull_access = grant(f"{name}-pull", site, principal, "AcrPull", registry.registry_id, self)
        self.self_stop = self._self_stop_role(name, site)
        self.placement = (
            compute.ProximityPlacementGroup(
                name,
                resource_group_name=site.group_name,
                location=site.location,
                proximity_placement_group_type=compute.ProximityPlacementGroupType.STANDARD,
                tags=site.tags,
                opts=self._child,
            )
            if settings.trainer.nodes > 1
            else None
        )
        addresses = tuple(worker_addresses(settings.trainer.nodes))
        scripts = pulumi.Output.all(
            registry.images["train"],
            registry.login_server,
            store.url,
            store.account_name,
            self.identity.client_id,
        ).apply(
            lambda values: [_custom_data(site, addresses, index, *values) for index in range(len(addresses))]
        )
        self.nics = [self._nic(name, site, index, address) for index, address in enumerate(addresses)]
        self.instances = [self._vm(name, site, index, scripts[index]) for index in range(len(addresses))]
        self.schedules = [self._shutdown(f"{name}-{i}", site, vm) for i, vm in enumerate(self.instances)]
        self.ids: list[pulumi.Output[str]] = [vm.id for vm in self.instances]
        self.private_ips: list[pulumi.Output[str]] = [
            nic.ip_configurations.apply(lambda c: c[0].private_ip_address if c else "") for nic in self.nics
        ]
        self.register_outputs({"ids": self.ids, "private_ips": self.private_ips})

    def _network(self, name: str, site: Site) -> network.Subnet:
        """VNet, NSG (workers talk only to each other; nothing comes in from outside) and NAT egress."""
        self.security_group = network.NetworkSecurityGroup(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            security_rules=[
                {
                    "name": "allow-workers-to-workers",
                    "priority": 100,
                    "direction": "Inbound",
                    "access": "Allow",
                    "protocol": "*",
                    "source_address_prefix": WORKER_CIDR,
                    "source_port_range": "*",
                    "destination_address_prefix": WORKER_CIDR,
                    "destination_port_range": "*",
                    "description": f"multi-worker training (TF_CONFIG, port {TRAINING_PORT})",
                },
                {
                    "name": "deny-all-other-inbound",
                    "priority": 4096,
                    "direction": "Inbound",
                    "access": "Deny",
                    "protocol": "*",
                    "source_address_prefix": "*",
                    "source_port_range": "*",
                    "destination_address_prefix": "*",
                    "destination_port_range": "*",
                    "description": "overrides AllowVnetInBound/AllowAzureLoadBalancerInBound",
                },
            ],
            tags=site.tags,
            opts=self._child,
        )
        self.nat_ip = network.PublicIPAddress(
            f"{name}-nat",
            resource_group_name=site.group_name,
            location=site.location,
            sku={"name": "Standard", "tier": "Regional"},
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            tags=site.tags,
            opts=self._child,
        )
        self.nat = network.NatGateway(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            sku={"name": "Standard"},
            public_ip_addresses=[{"id": self.nat_ip.id}],
            idle_timeout_in_minutes=10,
            tags=site.tags,
            opts=self._child,
        )
        self.vnet = network.VirtualNetwork(
            name,
            resource_group_name=site.group_name,
            location=site.location,
            address_space={"address_prefixes": [NETWORK_CIDR]},
            tags=site.tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]),
        )
        return network.Subnet(
            name,
            resource_group_name=site.group_name,
            virtual_network_name=self.vnet.name,
            subnet_name="workers",
            address_prefix=WORKER_CIDR,
            network_security_group={"id": self.security_group.id},
            nat_gateway={"id": self.nat.id},
            default_outbound_access=False,
            opts=self._child,
        )

    def _self_stop_role(self, name: str, site: Site) -> authorization.RoleDefinition:
        """A custom role that can only read and deallocate a VM: what the idle watchdog needs."""
        settings = site.settings
        return authorization.RoleDefinition(
            f"{name}-self-stop",
            role_definition_id=site.subscription_id.apply(
                lambda s: str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"{s}/{settings.project}/{settings.stack}/self-stop")
                )
            ),
            role_name=site.subscription_id.apply(
                lambda s: f"{resource_name(settings, 'trainer-self-stop')}-{s[:8]}"
            ),
            description="Lets a cloud-ai trainer deallocate itself when idle or done.",
            role_type="CustomRole",
            scope=site.group_id,
            assignable_scopes=[site.group_id],
            permissions=[{"actions": SELF_STOP_ACTIONS}],
            opts=self._child,
        )

    def _nic(self, name: str, site: Site, index: int, address: str) -> network.NetworkInterface:
        return network.NetworkInterface(
            f"{name}-{index}",
            resource_group_name=site.group_name,
            location=site.location,
            ip_configurations=[
                {
                    "name": "primary",
                    "subnet": {"id": self.subnet.id},
                    "private_ip_allocation_method": "Static",
                    "private_ip_address": address,
                    "private_ip_address_version": "IPv4",
                }
            ],
            tags=site.tags,
            opts=self._child,
        )

    def _vm(
        self, name: str, site: Site, index: int, custom_data: pulumi.Output[str]
    ) -> compute.VirtualMachine:
        trainer = site.settings.trainer
        vm_name = f"{resource_name(site.settings, 'trainer')}-{index}"
        spot = {
            "priority": "Spot",
            "eviction_policy": "Deallocate",
            "billing_profile": {"max_price": SPOT_MAX_PRICE},
        }
        vm = compute.VirtualMachine(
            f"{name}-{index}",
            vm_name=vm_name,
            resource_group_name=site.group_name,
            location=site.location,
            hardware_profile={"vm_size": trainer.instance_type},
            **(spot if trainer.spot else {"priority": "Regular"}),
            storage_profile={
                "image_reference": IMAGE,
                "os_disk": {
                    "create_option": "FromImage",
                    "disk_size_gb": trainer.disk_gb,
                    "delete_option": "Delete",
                    "caching": "ReadWrite",
                    "managed_disk": {"storage_account_type": "Premium_LRS"},
                },
            },
            # Encryption at host: the OS disk, the temp disk and their caches are encrypted on the host
            # (platform-managed keys); plain server-side encryption would leave the temp disk out.
            security_profile={"encryption_at_host": True},
            os_profile={
                "computer_name": vm_name,
                "admin_username": ADMIN_USER,
                "custom_data": custom_data,
                "linux_configuration": {
                    "disable_password_authentication": True,
                    "provision_vm_agent": True,
                    "ssh": {
                        "public_keys": [
                            {"path": f"/home/{ADMIN_USER}/.ssh/authorized_keys", "key_data": _unusable_key()}
                        ]
                    },
                },
            },
            network_profile={
                "network_interfaces": [
                    {"id": self.nics[index].id, "primary": True, "delete_option": "Delete"}
                ]
            },
            identity={"type": "UserAssigned", "user_assigned_identities": [self.identity.id]},
            proximity_placement_group={"id": self.placement.id} if self.placement else None,
            diagnostics_profile={"boot_diagnostics": {"enabled": True}},
            tags=site.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.store_access, self.pull_access],
                ignore_changes=["osProfile.linuxConfiguration.ssh"],
            ),
        )
        grant(f"{name}-{index}-self-stop", site, self.identity.principal_id, self.self_stop.id, vm.id, self)
        grant(
            f"{name}-{index}-metrics",
            site,
            self.identity.principal_id,
            "Monitoring Metrics Publisher",
            vm.id,
            self,
        )
        return vm

    def _shutdown(self, name: str, site: Site, vm: compute.VirtualMachine) -> devtestlab.GlobalSchedule:
        """The second guard next to the idle watchdog: a nightly deallocation, mailed beforehand."""
        return devtestlab.GlobalSchedule(
            f"{name}-shutdown",
            name=vm.name.apply(lambda vm_name: f"shutdown-computevm-{vm_name}"),
            resource_group_name=site.group_name,
            location=site.location,
            task_type="ComputeVmShutdownTask",
            status="Enabled",
            daily_recurrence={"time": SHUTDOWN_TIME},
            time_zone_id="UTC",
            target_resource_id=vm.id,
            notification_settings={
                "status": "Enabled",
                "time_in_minutes": SHUTDOWN_NOTICE_MINUTES,
                "email_recipient": site.settings.alarms.email,
                "notification_locale": "en",
            },
            tags=site.tags,
            opts=self._child,
        )


def _custom_data(
    site: Site,
    addresses: tuple[str, ...],
    index: int,
    image: str,
    registry: str,
    store_url: str,
    account: str,
    client_id: str,
) -> str:
    """Node INDEX's startup script, base64 as Azure custom data wants it."""
    script = startup_script(
        LaunchSpec(
            cloud="azure",
            image=image,
            registry=registry,
            store_url=store_url,
            workload=site.settings.workload,
            node_index=index,
            worker_addresses=addresses,
            idle_stop_minutes=site.settings.trainer.idle_stop_minutes,
            extra_env=(("AZURE_STORAGE_ACCOUNT_NAME", account), ("AZURE_CLIENT_ID", client_id)),
        )
    )
    return base64.b64encode(script.encode()).decode()


def _unusable_key() -> str:
    """An SSH public key whose private half is never kept: Azure requires a key, nobody may log in.

    Inbound SSH is denied anyway; a fresh key per run changes nothing on an existing VM (ignored).
    """
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()

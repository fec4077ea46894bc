"""What the Azure Resource Manager (azure-native) computes for the resources and invokes cloud-ai uses.

ARM ids follow the real paths (`/subscriptions/S/resourceGroups/G/providers/NS/TYPE/NAME`, nested for
child resources), so role assignment scopes, alert scopes and ABAC conditions can be checked against them.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from infra.mocks import CloudMocks, Computed

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TENANT = "11111111-1111-1111-1111-111111111111"
DEPLOYER = "22222222-2222-2222-2222-222222222222"

# type token -> (ARM provider path of the resource, the input that carries its own name)
ARM: dict[str, tuple[str, str]] = {
    "azure-native:storage:StorageAccount": ("Microsoft.Storage/storageAccounts", "accountName"),
    "azure-native:containerregistry:Registry": ("Microsoft.ContainerRegistry/registries", "registryName"),
    "azure-native:managedidentity:UserAssignedIdentity": (
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "resourceName",
    ),
    "azure-native:network:VirtualNetwork": ("Microsoft.Network/virtualNetworks", "virtualNetworkName"),
    "azure-native:network:NetworkSecurityGroup": (
        "Microsoft.Network/networkSecurityGroups",
        "networkSecurityGroupName",
    ),
    "azure-native:network:PublicIPAddress": ("Microsoft.Network/publicIPAddresses", "publicIpAddressName"),
    "azure-native:network:NatGateway": ("Microsoft.Network/natGateways", "natGatewayName"),
    "azure-native:network:NetworkInterface": ("Microsoft.Network/networkInterfaces", "networkInterfaceName"),
    "azure-native:compute:ProximityPlacementGroup": (
        "Microsoft.Compute/proximityPlacementGroups",
        "proximityPlacementGroupName",
    ),
    "azure-native:compute:VirtualMachine": ("Microsoft.Compute/virtualMachines", "vmName"),
    "azure-native:devtestlab:GlobalSchedule": ("Microsoft.DevTestLab/schedules", "name"),
    "azure-native:monitor:ActionGroup": ("Microsoft.Insights/actionGroups", "actionGroupName"),
    "azure-native:monitor:MetricAlert": ("Microsoft.Insights/metricAlerts", "ruleName"),
    "azure-native:monitor:ScheduledQueryRule": ("Microsoft.Insights/scheduledQueryRules", "ruleName"),
    "azure-native:operationalinsights:Workspace": (
        "Microsoft.OperationalInsights/workspaces",
        "workspaceName",
    ),
    "azure-native:applicationinsights:Component": ("Microsoft.Insights/components", "resourceName"),
    "azure-native:applicationinsights:Workbook": ("Microsoft.Insights/workbooks", "resourceName"),
    "azure-native:web:AppServicePlan": ("Microsoft.Web/serverfarms", "name"),
    "azure-native:web:WebApp": ("Microsoft.Web/sites", "name"),
}


def _group_id(group: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}"


def _guid(*parts: str) -> str:
    return str(uuid.UUID(hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]))


def default_outputs(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """Every ARM resource has a name (auto-named with a suffix when not given) and an ARM id."""
    physical = inputs.get("name") or _auto_name(name)
    group = inputs.get("resourceGroupName", "rg")
    return {"name": physical, "id": f"{_group_id(group)}/providers/Microsoft.Mock/resources/{physical}"}


def _auto_name(name: str) -> str:
    """azure-native auto-names a resource whose name input is absent: the logical name plus a suffix."""
    from infra.mocks import short_hash

    return f"{name}{short_hash(name)}"


def _arm(path: str, name_key: str, extra: Computed | None) -> Computed:
    """The name and ARM id of a top-level resource of PATH, plus what EXTRA computes."""

    def computed(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
        physical = inputs.get(name_key) or _auto_name(name)
        group = inputs.get("resourceGroupName", "rg")
        own = {"name": physical, "id": f"{_group_id(group)}/providers/{path}/{physical}"}
        return {**own, **(extra(name, {**inputs, name_key: physical}, mocks) if extra else {})}

    return computed


def _resource_group(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    group = inputs.get("resourceGroupName") or name
    return {"name": group, "id": _group_id(group), "location": inputs.get("location")}


def _storage_account(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    account = inputs["accountName"]
    return {
        "primaryEndpoints": {
            "blob": f"https://{account}.blob.core.windows.net/",
            "dfs": f"https://{account}.dfs.core.windows.net/",
        },
        "primaryLocation": inputs.get("location"),
        "provisioningState": "Succeeded",
    }


def _account_id(inputs: dict[str, Any]) -> str:
    group = inputs["resourceGroupName"]
    return f"{_group_id(group)}/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}"


def _blob_service(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"name": "default", "id": f"{_account_id(inputs)}/blobServices/default"}


def _container(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    container = inputs["containerName"]
    return {
        "name": container,
        "id": f"{_account_id(inputs)}/blobServices/default/containers/{container}",
        "hasImmutabilityPolicy": False,
        "hasLegalHold": False,
    }


def _management_policy(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"name": "DefaultManagementPolicy", "id": f"{_account_id(inputs)}/managementPolicies/default"}


def _registry(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"loginServer": f"{inputs['registryName'].lower()}.azurecr.io", "provisioningState": "Succeeded"}


def _image(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """docker-build pushes the first tag and reports the manifest digest; `ref` is repo@digest."""
    tag = (inputs.get("tags") or [f"{name}:latest"])[0]
    digest = "sha256:" + hashlib.sha256(f"{name}/{inputs.get('target')}".encode()).hexdigest()
    repository = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
    return {"digest": digest, "ref": f"{repository}@{digest}", "contextHash": digest[7:]}


def _user_identity(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {
        "principalId": _guid("principal", name),
        "clientId": _guid("client", name),
        "tenantId": TENANT,
    }


def _role_assignment(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    assignment = inputs.get("roleAssignmentName") or _guid("assignment", name)
    scope = inputs["scope"]
    return {
        "name": assignment,
        "id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{assignment}",
    }


def _role_definition(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    definition = inputs.get("roleDefinitionId") or _guid("role", name)
    return {
        "name": definition,
        "id": f"{inputs['scope']}/providers/Microsoft.Authorization/roleDefinitions/{definition}",
        "type": "Microsoft.Authorization/roleDefinitions",
    }


def _subnet(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    group, network, subnet = inputs["resourceGroupName"], inputs["virtualNetworkName"], inputs["subnetName"]
    return {
        "name": subnet,
        "id": f"{_group_id(group)}/providers/Microsoft.Network/virtualNetworks/{network}/subnets/{subnet}",
    }


def _public_ip(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    digest = hashlib.sha256(name.encode()).digest()
    return {"ipAddress": f"20.{digest[0]}.{digest[1]}.{digest[2]}"}


def _network_interface(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    configurations = [
        {**c, "privateIPAddressVersion": "IPv4", "primary": True} for c in inputs.get("ipConfigurations", [])
    ]
    return {"ipConfigurations": configurations, "macAddress": "00-0D-3A-00-00-01"}


def _virtual_machine(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """ARM answers the user-assigned identities (a list on input) as a map keyed by their ids."""
    identity = dict(inputs.get("identity") or {})
    if identity.get("userAssignedIdentities"):
        identity["userAssignedIdentities"] = {
            uai: {"principalId": _guid("principal", uai), "clientId": _guid("client", uai)}
            for uai in identity["userAssignedIdentities"]
        }
    return {"vmId": _guid("vm", name), "provisioningState": "Succeeded", "identity": identity or None}


def _budget(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    budget = inputs["budgetName"]
    return {"name": budget, "id": f"{inputs['scope']}/providers/Microsoft.Consumption/budgets/{budget}"}


def _workspace(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"customerId": _guid("workspace", name)}


def _component(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    key = _guid("ikey", name)
    return {
        "appId": _guid("app", name),
        "instrumentationKey": key,
        "connectionString": f"InstrumentationKey={key};IngestionEndpoint=https://{mocks.region}.in."
        "applicationinsights.azure.com/",
    }


def _web_app(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    identity = dict(inputs.get("identity") or {})
    if "SystemAssigned" in str(identity.get("type", "")):
        identity.update(principalId=_guid("site-principal", name), tenantId=TENANT)
    return {
        "defaultHostName": f"{inputs['name']}.azurewebsites.net",
        "identity": identity or None,
        "state": "Running",
    }


def _scm_policy(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    group, site = inputs["resourceGroupName"], inputs["name"]
    leaf = "scm" if "scm" in name else "ftp"
    site_id = f"{_group_id(group)}/providers/Microsoft.Web/sites/{site}"
    return {"id": f"{site_id}/basicPublishingCredentialsPolicies/{leaf}"}


_EXTRA: dict[str, Computed] = {
    "azure-native:resources:ResourceGroup": _resource_group,
    "azure-native:storage:StorageAccount": _storage_account,
    "azure-native:storage:BlobServiceProperties": _blob_service,
    "azure-native:storage:BlobContainer": _container,
    "azure-native:storage:ManagementPolicy": _management_policy,
    "azure-native:containerregistry:Registry": _registry,
    "docker-build:index:Image": _image,
    "azure-native:managedidentity:UserAssignedIdentity": _user_identity,
    "azure-native:authorization:RoleAssignment": _role_assignment,
    "azure-native:authorization:RoleDefinition": _role_definition,
    "azure-native:network:Subnet": _subnet,
    "azure-native:network:PublicIPAddress": _public_ip,
    "azure-native:network:NetworkInterface": _network_interface,
    "azure-native:compute:VirtualMachine": _virtual_machine,
    "azure-native:consumption:Budget": _budget,
    "azure-native:operationalinsights:Workspace": _workspace,
    "azure-native:applicationinsights:Component": _component,
    "azure-native:web:WebApp": _web_app,
    "azure-native:web:WebAppScmAllowed": _scm_policy,
    "azure-native:web:WebAppFtpAllowed": _scm_policy,
}


COMPUTED: dict[str, Computed] = {
    **{token: _arm(path, key, _EXTRA.get(token)) for token, (path, key) in ARM.items()},
    **{token: answer for token, answer in _EXTRA.items() if token not in ARM},
}


def _client_config(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"clientId": DEPLOYER, "objectId": DEPLOYER, "subscriptionId": SUBSCRIPTION, "tenantId": TENANT}


CALLS: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = {
    "azure-native:authorization:getClientConfig": _client_config,
}

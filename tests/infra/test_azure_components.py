"""Each Azure component's security, cost and wiring properties, on the resources the stacks declare."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pulumi
import pytest

from infra.azure.alarms import idle_window, month_start
from infra.azure.endpoint import function_timeout, plan_sku
from infra.azure.site import ROLES
from infra.mocks import Declared, StackRun
from infra.platform import WORKER_CIDR
from tests.infra.conftest import stack

STACKS = ["azure-dev", "azure-prod"]

REPO = Path(__file__).resolve().parents[2]


def one(run: StackRun, type_token: str, name_part: str = "") -> Declared:
    found = [r for r in run.of_type(type_token) if name_part in r.name]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def assignments(run: StackRun, role: str) -> list[Declared]:
    return [
        r
        for r in run.of_type("azure-native:authorization:RoleAssignment")
        if r.inputs["roleDefinitionId"].endswith(ROLES[role])
    ]


# --- store -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_store_account_is_private_identity_only_and_encrypted(name: str) -> None:
    account = one(stack(name), "azure-native:storage:StorageAccount", "-store").inputs
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["encryption"]["requireInfrastructureEncryption"] is True
    assert account["encryption"]["services"]["blob"]["enabled"] is True
    assert account["sku"]["name"] == ("Standard_ZRS" if name == "azure-prod" else "Standard_LRS")


@pytest.mark.parametrize("name", STACKS)
def test_store_keeps_versions_and_soft_deletes(name: str) -> None:
    service = one(stack(name), "azure-native:storage:BlobServiceProperties").inputs
    days = 30 if name == "azure-prod" else 7
    assert service["isVersioningEnabled"] is True
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": days}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": days}


def test_store_container_is_private_and_old_checkpoints_expire() -> None:
    run = stack("azure-dev")
    assert one(run, "azure-native:storage:BlobContainer").inputs["publicAccess"] == "None"
    rules = {
        r["name"]: r for r in one(run, "azure-native:storage:ManagementPolicy").inputs["policy"]["rules"]
    }
    checkpoints = rules["expire-checkpoints"]["definition"]
    assert checkpoints["filters"]["prefixMatch"] == ["store/checkpoints/"]
    assert checkpoints["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"] == 30
    versions = rules["expire-old-versions"]["definition"]["actions"]["version"]["delete"]
    assert versions["daysAfterCreationGreaterThan"] == 30


# --- registry --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_registry_has_no_admin_user_and_no_anonymous_pull(name: str) -> None:
    registry = one(stack(name), "azure-native:containerregistry:Registry").inputs
    assert registry["adminUserEnabled"] is False
    assert registry["anonymousPullEnabled"] is False


def test_images_build_their_targets_on_up_only() -> None:
    images = {r.inputs["target"]: r.inputs for r in stack("azure-dev").of_type("docker-build:index:Image")}
    assert set(images) == {"train", "serve", "function-azure"}
    for image in images.values():
        assert image["push"] is True and image["buildOnPreview"] is False
        assert image["context"]["location"] == str(REPO)
        assert image["dockerfile"]["location"] == str(REPO / "workload" / "Dockerfile")
        assert image["tags"][0].endswith(":azure-dev") and ".azurecr.io/cloud-ai/" in image["tags"][0]


def test_deployer_may_push_to_the_registry_only() -> None:
    run = stack("azure-dev")
    push = assignments(run, "AcrPush")
    assert len(push) == 1
    assert push[0].inputs["scope"] == one(run, "azure-native:containerregistry:Registry").state["id"]


# --- trainers --------------------------------------------------------------------------------------


def vms(name: str) -> list[dict]:
    return [r.inputs for r in stack(name).of_type("azure-native:compute:VirtualMachine")]


def test_dev_trainer_is_one_spot_t4_that_deallocates_on_eviction() -> None:
    (vm,) = vms("azure-dev")
    assert vm["hardwareProfile"]["vmSize"] == "Standard_NC4as_T4_v3"
    assert vm["priority"] == "Spot"
    assert vm["evictionPolicy"] == "Deallocate"
    assert vm["billingProfile"] == {"maxPrice": -1}
    assert "proximityPlacementGroup" not in vm


def test_prod_trainers_are_on_demand_in_one_proximity_placement_group() -> None:
    run = stack("azure-prod")
    group = one(run, "azure-native:compute:ProximityPlacementGroup").state["id"]
    for vm in vms("azure-prod"):
        assert vm["priority"] == "Regular"
        assert "evictionPolicy" not in vm and "billingProfile" not in vm
        assert vm["proximityPlacementGroup"] == {"id": group}


@pytest.mark.parametrize("name", STACKS)
def test_trainers_boot_a_gpu_image_with_encrypted_disks_and_no_password(name: str) -> None:
    disk_gb = {"azure-dev": 200, "azure-prod": 500}[name]
    for vm in vms(name):
        assert vm["storageProfile"]["imageReference"]["offer"] == "ubuntu-hpc"
        assert vm["storageProfile"]["osDisk"]["diskSizeGB"] == disk_gb
        assert vm["storageProfile"]["osDisk"]["managedDisk"]["storageAccountType"] == "Premium_LRS"
        assert vm["securityProfile"]["encryptionAtHost"] is True
        linux = vm["osProfile"]["linuxConfiguration"]
        assert linux["disablePasswordAuthentication"] is True
        assert "adminPassword" not in vm["osProfile"]


@pytest.mark.parametrize("name", STACKS)
def test_trainers_have_no_public_ip_and_fixed_worker_addresses(name: str) -> None:
    run = stack(name)
    subnet = one(run, "azure-native:network:Subnet")
    nics = run.of_type("azure-native:network:NetworkInterface")
    for index, nic in enumerate(nics):
        (config,) = nic.inputs["ipConfigurations"]
        assert "publicIPAddress" not in config
        assert config["privateIPAllocationMethod"] == "Static"
        assert config["privateIPAddress"] == f"10.42.1.{10 + index}"
        assert config["subnet"] == {"id": subnet.state["id"]}
    # the only public IP is the NAT gateway's
    (public_ip,) = run.of_type("azure-native:network:PublicIPAddress")
    nat = one(run, "azure-native:network:NatGateway")
    assert nat.inputs["publicIpAddresses"] == [{"id": public_ip.state["id"]}]
    assert subnet.inputs["natGateway"] == {"id": nat.state["id"]}
    assert subnet.inputs["addressPrefix"] == WORKER_CIDR
    assert subnet.inputs["defaultOutboundAccess"] is False


def test_nsg_lets_only_workers_talk_to_each_other() -> None:
    run = stack("azure-prod")
    nsg = one(run, "azure-native:network:NetworkSecurityGroup")
    rules = sorted(nsg.inputs["securityRules"], key=lambda r: r["priority"])
    allow, deny = rules
    assert (allow["access"], allow["direction"]) == ("Allow", "Inbound")
    assert allow["sourceAddressPrefix"] == allow["destinationAddressPrefix"] == WORKER_CIDR
    assert (deny["access"], deny["direction"], deny["sourceAddressPrefix"]) == ("Deny", "Inbound", "*")
    assert deny["priority"] == 4096
    assert one(run, "azure-native:network:Subnet").inputs["networkSecurityGroup"] == {"id": nsg.state["id"]}


def test_trainer_identity_has_blob_contributor_on_the_container_and_acr_pull() -> None:
    run = stack("azure-prod")
    identity = one(run, "azure-native:managedidentity:UserAssignedIdentity").state
    container = one(run, "azure-native:storage:BlobContainer").state["id"]
    registry = one(run, "azure-native:containerregistry:Registry").state["id"]
    (store,) = assignments(run, "Storage Blob Data Contributor")
    assert store.inputs["scope"] == container and container.endswith("/blobServices/default/containers/store")
    assert store.inputs["principalId"] == identity["principalId"]
    pulls = {a.inputs["principalId"]: a.inputs["scope"] for a in assignments(run, "AcrPull")}
    assert pulls[identity["principalId"]] == registry
    for vm in vms("azure-prod"):
        assert vm["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity["id"]]}


def test_trainers_may_deallocate_only_themselves() -> None:
    run = stack("azure-prod")
    role = one(run, "azure-native:authorization:RoleDefinition")
    assert role.inputs["permissions"] == [
        {
            "actions": [
                "Microsoft.Compute/virtualMachines/read",
                "Microsoft.Compute/virtualMachines/deallocate/action",
            ]
        }
    ]
    vm_ids = {vm.state["id"] for vm in run.of_type("azure-native:compute:VirtualMachine")}
    self_stop = [
        a
        for a in run.of_type("azure-native:authorization:RoleAssignment")
        if a.inputs["roleDefinitionId"] == role.state["id"]
    ]
    assert {a.inputs["scope"] for a in self_stop} == vm_ids
    assert {a.inputs["scope"] for a in assignments(run, "Monitoring Metrics Publisher")} >= vm_ids


def test_custom_data_is_the_shared_startup_script_per_node() -> None:
    run = stack("azure-prod")
    account = one(run, "azure-native:storage:StorageAccount", "-store").inputs["accountName"]
    client_id = one(run, "azure-native:managedidentity:UserAssignedIdentity").state["clientId"]
    train = next(r for r in run.of_type("docker-build:index:Image") if r.inputs["target"] == "train")
    for vm in vms("azure-prod"):
        index = int(vm["vmName"].rsplit("-", 1)[-1])
        script = base64.b64decode(vm["osProfile"]["customData"]).decode()
        assert f"NODE_INDEX={index}" in script
        assert script.startswith("#!/bin/bash\n# cloud-ai trainer node")
        assert f"IMAGE={train.state['ref']}" in script
        assert "export MODEL_STORE=az://store" in script
        assert f"export AZURE_STORAGE_ACCOUNT_NAME={account}" in script
        assert f"export AZURE_CLIENT_ID={client_id}" in script
        assert f'"index":{index}' in script and "10.42.1.11:12345" in script
        assert "/deallocate?api-version=" in script


def test_auto_shutdown_schedule_guards_every_vm() -> None:
    run = stack("azure-prod")
    schedules = {
        s.inputs["targetResourceId"]: s.inputs for s in run.of_type("azure-native:devtestlab:GlobalSchedule")
    }
    for vm in run.of_type("azure-native:compute:VirtualMachine"):
        schedule = schedules[vm.state["id"]]
        assert schedule["name"] == f"shutdown-computevm-{vm.inputs['vmName']}"
        assert schedule["taskType"] == "ComputeVmShutdownTask" and schedule["status"] == "Enabled"
        assert schedule["dailyRecurrence"] == {"time": "2300"} and schedule["timeZoneId"] == "UTC"
        assert schedule["notificationSettings"]["emailRecipient"] == "ml-oncall@example.com"


# --- endpoint --------------------------------------------------------------------------------------


def app(name: str) -> dict:
    return one(stack(name), "azure-native:web:WebApp").inputs


def settings_of(name: str) -> dict[str, str]:
    return {s["name"]: s["value"] for s in app(name)["siteConfig"]["appSettings"]}


@pytest.mark.parametrize("name", STACKS)
def test_function_app_runs_the_function_image_on_premium_over_https(name: str) -> None:
    run = stack(name)
    web = app(name)
    function = next(
        r for r in run.of_type("docker-build:index:Image") if r.inputs["target"] == "function-azure"
    )
    plan = one(run, "azure-native:web:AppServicePlan")
    assert plan.inputs["kind"] == "elastic" and plan.inputs["reserved"] is True
    assert plan.inputs["sku"]["tier"] == "ElasticPremium"
    assert web["kind"] == "functionapp,linux,container"
    assert web["serverFarmId"] == plan.state["id"]
    assert web["httpsOnly"] is True
    assert web["identity"] == {"type": "SystemAssigned"}
    config = web["siteConfig"]
    assert config["linuxFxVersion"] == f"DOCKER|{function.state['ref']}"
    assert config["acrUseManagedIdentityCreds"] is True
    assert config["minTlsVersion"] == "1.2" and config["ftpsState"] == "Disabled"
    for policy in ("azure-native:web:WebAppScmAllowed", "azure-native:web:WebAppFtpAllowed"):
        assert one(run, policy).inputs["allow"] is False


@pytest.mark.parametrize("name", STACKS)
def test_function_settings_point_at_the_model_with_key_auth(name: str) -> None:
    values = settings_of(name)
    run = stack(name)
    assert values["MODEL_STORE"] == "az://store"
    assert values["MODEL_NAME"] == "image-classifier"
    assert (
        values["AZURE_STORAGE_ACCOUNT_NAME"]
        == one(run, "azure-native:storage:StorageAccount", "-store").inputs["accountName"]
    )
    assert values["FUNCTION_AUTH_LEVEL"] == "function"
    assert (
        values["AzureWebJobsStorage__accountName"]
        == one(run, "azure-native:storage:StorageAccount", "-host").inputs["accountName"]
    )
    insights = one(run, "azure-native:applicationinsights:Component")
    assert values["APPLICATIONINSIGHTS_CONNECTION_STRING"] == insights.state["connectionString"]
    assert values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    assert insights.inputs["disableLocalAuth"] is True
    assert "AzureWebJobsStorage" not in values  # no connection string with an account key


def test_function_reads_only_its_model_prefix() -> None:
    run = stack("azure-dev")
    principal = one(run, "azure-native:web:WebApp").state["identity"]["principalId"]
    (reader,) = assignments(run, "Storage Blob Data Reader")
    assert reader.inputs["principalId"] == principal
    assert reader.inputs["scope"] == one(run, "azure-native:storage:BlobContainer").state["id"]
    condition = reader.inputs["condition"]
    assert reader.inputs["conditionVersion"] == "2.0"
    assert "blobs:path] StringStartsWith 'models/image-classifier/'" in condition
    assert "blobs:prefix] StringStartsWith 'models/image-classifier'" in condition
    assert not [
        a for a in assignments(run, "Storage Blob Data Contributor") if a.inputs["principalId"] == principal
    ]


def test_public_endpoint_in_dev_allows_anonymous_calls(run_config) -> None:
    config = dict(stack("azure-dev").config)
    config["cloud-ai:endpoint"] = {**config["cloud-ai:endpoint"], "public": True}
    web = run_config("azure-dev", config).of_type("azure-native:web:WebApp")[0].inputs
    values = {s["name"]: s["value"] for s in web["siteConfig"]["appSettings"]}
    assert values["FUNCTION_AUTH_LEVEL"] == "anonymous"


def test_plan_size_and_timeouts_follow_the_endpoint_settings() -> None:
    assert [plan_sku(m) for m in (128, 3008, 3584, 4096, 7168, 10240)] == [
        "EP1",
        "EP1",
        "EP1",
        "EP2",
        "EP2",
        "EP3",
    ]
    assert function_timeout(60) == "00:01:00" and function_timeout(3725) == "01:02:05"
    assert settings_of("azure-prod")["AzureFunctionsJobHost__functionTimeout"] == "00:00:30"
    assert (
        one(stack("azure-prod"), "azure-native:web:AppServicePlan").inputs["maximumElasticWorkerCount"] == 50
    )


# --- alarms ----------------------------------------------------------------------------------------


def test_action_group_mails_the_alarm_address() -> None:
    group = one(stack("azure-dev"), "azure-native:monitor:ActionGroup").inputs
    assert group["emailReceivers"][0]["emailAddress"] == "ml-oncall@example.com"
    assert group["enabled"] is True and len(group["groupShortName"]) <= 12


def test_every_vm_has_idle_gpu_idle_cpu_and_availability_alerts() -> None:
    run = stack("azure-prod")
    group = one(run, "azure-native:monitor:ActionGroup").state["id"]
    metrics: dict[str, set[str]] = {}
    for alert in run.of_type("azure-native:monitor:MetricAlert"):
        assert (
            alert.inputs["criteria"]["odataType"]
            == "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria"
        )
        (criterion,) = alert.inputs["criteria"]["allOf"]
        assert criterion["criterionType"] == "StaticThresholdCriterion"
        (scope,) = alert.inputs["scopes"]
        metrics.setdefault(scope, set()).add(criterion["metricName"])
        assert alert.inputs["actions"] == [{"actionGroupId": group}]
        if criterion["metricName"] in ("Percentage CPU", "utilization_gpu"):
            assert criterion["operator"] == "LessThan" and criterion["threshold"] == 5
            assert alert.inputs["windowSize"] == "PT1H"  # twice prod's 20 idle minutes, rounded up
    vm_ids = {vm.state["id"] for vm in run.of_type("azure-native:compute:VirtualMachine")}
    assert metrics == {vm: {"Percentage CPU", "utilization_gpu", "VmAvailabilityMetric"} for vm in vm_ids}


def test_endpoint_alerts_watch_error_rate_and_p99_latency() -> None:
    run = stack("azure-prod")
    insights = one(run, "azure-native:applicationinsights:Component").state["id"]
    rules = {
        r.name.rsplit("-", 1)[-1]: r.inputs for r in run.of_type("azure-native:monitor:ScheduledQueryRule")
    }
    rate = rules["rate"]["criteria"]["allOf"][0]
    latency = rules["latency"]["criteria"]["allOf"][0]
    assert (rate["metricMeasureColumn"], rate["threshold"], rate["operator"]) == ("rate", 0.5, "GreaterThan")
    assert "resultCode) >= 500" in rate["query"]
    assert (latency["metricMeasureColumn"], latency["threshold"]) == ("p99", 1000)
    assert "percentile(duration, 99)" in latency["query"]
    for rule in rules.values():
        assert rule["scopes"] == [insights]


def test_budget_watches_the_resource_group_at_80_and_100_percent() -> None:
    run = stack("azure-prod")
    budget = one(run, "azure-native:consumption:Budget").inputs
    assert budget["scope"] == one(run, "azure-native:resources:ResourceGroup").state["id"]
    assert budget["amount"] == 5000 and budget["timeGrain"] == "Monthly" and budget["category"] == "Cost"
    thresholds = sorted(n["threshold"] for n in budget["notifications"].values())
    assert thresholds == [80, 100]
    assert all(n["contactEmails"] == ["ml-oncall@example.com"] for n in budget["notifications"].values())
    assert budget["timePeriod"]["startDate"].endswith("-01T00:00:00Z")


def test_workbook_charts_the_trainers_and_the_endpoint() -> None:
    run = stack("azure-prod")
    workbook = one(run, "azure-native:applicationinsights:Workbook").inputs
    content = json.loads(workbook["serializedData"])
    vm_ids = sorted(vm.state["id"] for vm in run.of_type("azure-native:compute:VirtualMachine"))
    charts = [item["content"] for item in content["items"] if item["type"] == 10]
    assert all(sorted(c["resourceIds"]) == vm_ids for c in charts)
    assert {c["metrics"][0]["metric"] for c in charts} == {
        "Telegraf/nvidia_smi--utilization_gpu",
        "Microsoft.Compute/virtualMachines--Percentage CPU",
    }


def test_alert_windows_and_budget_start() -> None:
    import datetime

    assert [idle_window(m) for m in (5, 20, 30, 45, 200, 2000)] == [
        "PT15M",
        "PT1H",
        "PT1H",
        "PT6H",
        "PT12H",
        "PT24H",
    ]
    assert month_start(datetime.date(2026, 12, 4)) == "2026-12-01T00:00:00Z"


@pulumi.runtime.test
def test_components_expose_their_outputs() -> pulumi.Output[None]:
    deployment = stack("azure-dev").program["deployment"]

    def check(values: list) -> None:
        account, container_id, host, dashboard = values
        assert container_id.endswith(f"/storageAccounts/{account}/blobServices/default/containers/store")
        assert host.endswith(".azurewebsites.net")
        assert "/workbooks/" in dashboard

    return pulumi.Output.all(
        deployment.store.account_name,
        deployment.store.container_id,
        deployment.endpoint.host,
        deployment.alarms.dashboard_url,
    ).apply(check)

"""Every GCP stack file, run through the program under the mocks: what it declares, with which settings.

Whole-stack facts (counts, inputs) read `StackRun.resources`; component outputs are checked in
test_gcp_components.py inside `Output.apply`.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infra.gcp.project import REQUIRED_APIS
from infra.mocks import STACKS, CloudMocks, Declared, StackRun, run_stack, stack_name
from infra.platform import WORKER_CIDR, worker_addresses
from tests.infra.conftest import stack

GCP_STACKS = sorted(stack_name(path) for path in STACKS.glob("Pulumi.gcp-*.yaml"))

INSTANCE = "gcp:compute/instance:Instance"
BUCKET = "gcp:storage/bucket:Bucket"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
SERVICE = "gcp:cloudrunv2/service:Service"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
IMAGE = "docker-build:index:Image"
API = "gcp:projects/service:Service"

# One line per resource type, per stack: dropping or doubling a resource fails here.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "gcp-dev": {
        "cloud-ai:gcp:Project": 1,
        API: 9,
        "cloud-ai:gcp:ModelStore": 1,
        "cloud-ai:gcp:Registry": 1,
        "cloud-ai:gcp:Trainers": 1,
        "cloud-ai:gcp:Endpoint": 1,
        "cloud-ai:gcp:Alarms": 1,
        BUCKET: 1,
        BUCKET_MEMBER: 2,
        "gcp:artifactregistry/repository:Repository": 1,
        "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
        IMAGE: 3,
        "gcp:compute/network:Network": 1,
        "gcp:compute/subnetwork:Subnetwork": 1,
        "gcp:compute/router:Router": 1,
        "gcp:compute/routerNat:RouterNat": 1,
        "gcp:serviceaccount/account:Account": 2,
        "gcp:projects/iAMMember:IAMMember": 2,
        INSTANCE: 1,
        SERVICE: 1,
        "gcp:monitoring/notificationChannel:NotificationChannel": 1,
        POLICY: 4,
        "gcp:billing/budget:Budget": 1,
        "gcp:monitoring/dashboard:Dashboard": 1,
    },
}
# prod: a second node, its compact placement policy and the workers-only firewall rule.
EXPECTED_COUNTS["gcp-prod"] = {
    **EXPECTED_COUNTS["gcp-dev"],
    INSTANCE: 2,
    "gcp:compute/resourcePolicy:ResourcePolicy": 1,
    "gcp:compute/firewall:Firewall": 1,
}

REPO = Path(__file__).resolve().parents[2]


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's wire marker for a secret value


def revealed(value: Any) -> Any:
    """A secret input as the mocks receive it, unwrapped (the value itself must still be right)."""
    return value["value"] if isinstance(value, dict) and SECRET_SIG in value else value


def only(run: StackRun, type_token: str) -> Declared:
    found = run.of_type(type_token)
    assert len(found) == 1, f"{type_token}: {len(found)} declared"
    return found[0]


def test_every_gcp_stack_has_expected_counts() -> None:
    assert sorted(EXPECTED_COUNTS) == GCP_STACKS


@pytest.mark.parametrize("name", GCP_STACKS)
def test_resource_counts(name: str) -> None:
    assert dict(Counter(r.type for r in stack(name).resources)) == EXPECTED_COUNTS[name]


@pytest.mark.parametrize("name", GCP_STACKS)
def test_labelable_resources_carry_the_stack_labels(name: str) -> None:
    run = stack(name)
    labelled = [BUCKET, INSTANCE, SERVICE, "gcp:artifactregistry/repository:Repository"]
    for resource in (r for t in labelled for r in run.of_type(t)):
        assert resource.inputs["labels"]["stack"] == name, resource.name
        assert resource.inputs["labels"]["managed-by"] == "pulumi", resource.name
    for policy in run.of_type(POLICY):
        assert policy.inputs["userLabels"]["stack"] == name


@pytest.mark.parametrize("name", GCP_STACKS)
def test_outputs_are_exported(name: str) -> None:
    outputs = stack(name).outputs
    nodes = len(stack(name).of_type(INSTANCE))
    assert outputs["storeUrl"].startswith("gs://cloud-ai-")
    assert (
        outputs["registryUrl"]
        == f"us-central1-docker.pkg.dev/{stack(name).config['gcp:project']}/cloud-ai-{name}-images"
    )
    assert set(outputs["images"]) == {"train", "serve", "function"}
    assert all(
        "@sha256:" in ref and ref.startswith(outputs["registryUrl"]) for ref in outputs["images"].values()
    )
    assert len(outputs["trainerIds"]) == nodes and all(outputs["trainerIds"])
    assert outputs["trainerPrivateIps"] == worker_addresses(nodes)
    assert outputs["endpointUrl"].startswith("https://") and outputs["endpointUrl"].endswith(".run.app")
    assert "/notificationChannels/" in outputs["alarmTopic"]
    assert outputs["dashboardUrl"].startswith(
        "https://console.cloud.google.com/monitoring/dashboards/custom/"
    )


# --- store -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GCP_STACKS)
def test_bucket_is_private_versioned_and_expires_old_data(name: str) -> None:
    bucket = only(stack(name), BUCKET).inputs
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["versioning"] == {"enabled": True}
    assert bucket["location"] == stack(name).config["gcp:region"]
    rules = {
        (r["action"]["type"], tuple(sorted(r["condition"]))): r["condition"] for r in bucket["lifecycleRules"]
    }
    checkpoints = rules[("Delete", ("age", "matchesPrefixes"))]
    assert checkpoints["matchesPrefixes"] == ["checkpoints/"] and checkpoints["age"] > 0
    noncurrent = rules[("Delete", ("daysSinceNoncurrentTime", "withState"))]
    assert noncurrent["withState"] == "ARCHIVED" and noncurrent["daysSinceNoncurrentTime"] > 0
    assert ("AbortIncompleteMultipartUpload", ("age",)) in rules


def test_prod_bucket_is_kept_dev_bucket_can_be_emptied() -> None:
    assert only(stack("gcp-prod"), BUCKET).inputs["forceDestroy"] is False
    assert only(stack("gcp-dev"), BUCKET).inputs["forceDestroy"] is True


# --- registry --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GCP_STACKS)
def test_images_build_on_up_only_and_push_to_the_repository(name: str) -> None:
    images = {r.inputs["target"]: r.inputs for r in stack(name).of_type(IMAGE)}
    assert set(images) == {"train", "serve", "function-gcp"}
    registry = stack(name).outputs["registryUrl"]
    for target, image in images.items():
        assert image["buildOnPreview"] is False and image["push"] is True
        assert image["dockerfile"] == {"location": str(REPO / "workload" / "Dockerfile")}
        assert image["context"] == {"location": str(REPO)}
        assert image["tags"][0].startswith(f"{registry}/"), target
        assert SECRET_SIG in image["registries"], "the registry token must stay secret"
        login = revealed(image["registries"])[0]
        assert login == {
            "address": "us-central1-docker.pkg.dev",
            "username": "oauth2accesstoken",
            "password": "ya29.mock-access-token",
        }
    repository = only(stack(name), "gcp:artifactregistry/repository:Repository").inputs
    assert repository["format"] == "DOCKER"
    assert {p["action"] for p in repository["cleanupPolicies"]} == {"KEEP", "DELETE"}


# --- trainer ---------------------------------------------------------------------------------------


def trainers(name: str) -> list[dict[str, Any]]:
    return [r.inputs for r in sorted(stack(name).of_type(INSTANCE), key=lambda r: r.name)]


@pytest.mark.parametrize("name", GCP_STACKS)
def test_trainers_are_gpu_vms_on_a_deep_learning_image(name: str) -> None:
    config = stack(name).config["cloud-ai:trainer"]
    for vm in trainers(name):
        assert vm["machineType"] == config["instanceType"]
        assert vm["zone"] == stack(name).config["gcp:zone"]
        assert vm["scheduling"]["onHostMaintenance"] == "TERMINATE"
        image = vm["bootDisk"]["initializeParams"]["image"]
        assert image.startswith("projects/deeplearning-platform-release/global/images/family/common-cu")
        assert "nvidia" in image
        assert vm["bootDisk"]["initializeParams"]["size"] == config["diskGb"]
        # g2 has its L4s built in: no guest accelerators declared on top.
        assert not vm.get("guestAccelerators")


def test_dev_trainer_is_spot_and_stops_when_reclaimed() -> None:
    (vm,) = trainers("gcp-dev")
    assert vm["scheduling"] == {
        "provisioningModel": "SPOT",
        "preemptible": True,
        "automaticRestart": False,
        "instanceTerminationAction": "STOP",
        "onHostMaintenance": "TERMINATE",
    }


def test_prod_trainers_are_on_demand() -> None:
    for vm in trainers("gcp-prod"):
        assert vm["scheduling"]["provisioningModel"] == "STANDARD"
        assert not vm["scheduling"].get("preemptible")
        assert "instanceTerminationAction" not in vm["scheduling"]


@pytest.mark.parametrize("name", GCP_STACKS)
def test_trainers_are_private_shielded_and_reachable_only_through_os_login(name: str) -> None:
    subnet = only(stack(name), "gcp:compute/subnetwork:Subnetwork").inputs
    assert subnet["ipCidrRange"] == WORKER_CIDR and subnet["privateIpGoogleAccess"] is True
    addresses = worker_addresses(len(trainers(name)))
    for vm, address in zip(trainers(name), addresses, strict=True):
        (nic,) = vm["networkInterfaces"]
        assert "accessConfigs" not in nic or nic["accessConfigs"] == []
        assert nic["networkIp"] == address
        assert vm["shieldedInstanceConfig"]["enableVtpm"] is True
        assert vm["shieldedInstanceConfig"]["enableIntegrityMonitoring"] is True
        assert vm["metadata"]["block-project-ssh-keys"] == "TRUE"
        assert vm["metadata"]["enable-oslogin"] == "TRUE"
    firewalls = stack(name).of_type("gcp:compute/firewall:Firewall")
    assert not any("22" in str(f.inputs.get("allows")) for f in firewalls)


@pytest.mark.parametrize("name", GCP_STACKS)
def test_egress_goes_through_cloud_nat_for_the_worker_subnet(name: str) -> None:
    nat = only(stack(name), "gcp:compute/routerNat:RouterNat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat["natIpAllocateOption"] == "AUTO_ONLY"
    assert [s["sourceIpRangesToNats"] for s in nat["subnetworks"]] == [["ALL_IP_RANGES"]]


def test_multi_node_trainers_share_a_compact_placement_and_a_workers_only_rule() -> None:
    run = stack("gcp-prod")
    policy = only(run, "gcp:compute/resourcePolicy:ResourcePolicy")
    assert policy.inputs["groupPlacementPolicy"] == {"collocation": "COLLOCATED", "vmCount": 2.0}
    assert {vm["resourcePolicies"] for vm in trainers("gcp-prod")} == {policy.state["selfLink"]}
    rule = only(run, "gcp:compute/firewall:Firewall").inputs
    email = only_trainer_account(run)
    assert rule["direction"] == "INGRESS"
    assert rule["sourceServiceAccounts"] == [email] and rule["targetServiceAccounts"] == [email]
    assert "sourceRanges" not in rule


def test_single_node_has_no_placement_policy_and_no_peer_rule() -> None:
    run = stack("gcp-dev")
    assert run.of_type("gcp:compute/resourcePolicy:ResourcePolicy") == []
    assert run.of_type("gcp:compute/firewall:Firewall") == []
    assert "resourcePolicies" not in trainers("gcp-dev")[0]


def only_trainer_account(run: StackRun) -> str:
    (account,) = [
        a
        for a in run.of_type("gcp:serviceaccount/account:Account")
        if a.inputs["accountId"].endswith("-trainer")
    ]
    return str(account.state["email"])


@pytest.mark.parametrize("name", GCP_STACKS)
def test_trainer_identity_is_least_privilege(name: str) -> None:
    run = stack(name)
    email = only_trainer_account(run)
    member = f"serviceAccount:{email}"
    for vm in trainers(name):
        assert vm["serviceAccount"]["email"] == email
    bucket = only(run, BUCKET).state["name"]
    store_grants = [g.inputs for g in run.of_type(BUCKET_MEMBER) if g.inputs["member"] == member]
    assert store_grants == [{"bucket": bucket, "role": "roles/storage.objectUser", "member": member}]
    (reader,) = run.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    assert reader.inputs["role"] == "roles/artifactregistry.reader" and reader.inputs["member"] == member
    assert reader.inputs["repository"] == f"cloud-ai-{name}-images"
    project_roles = {g.inputs["role"] for g in run.of_type("gcp:projects/iAMMember:IAMMember")}
    assert project_roles == {"roles/monitoring.metricWriter", "roles/logging.logWriter"}


@pytest.mark.parametrize("name", GCP_STACKS)
def test_trainers_boot_the_shared_startup_script(name: str) -> None:
    outputs = stack(name).outputs
    vms = trainers(name)
    for index, vm in enumerate(vms):
        script = vm["metadata"]["startup-script"]
        assert script.startswith("#!/bin/bash")
        assert f"IMAGE={outputs['images']['train']}" in script
        assert "REGISTRY=us-central1-docker.pkg.dev" in script
        assert f"export MODEL_STORE={outputs['storeUrl']}" in script
        assert f"NODE_INDEX={index}" in script
        assert f"IDLE_STOP_MINUTES={stack(name).config['cloud-ai:trainer']['idleStopMinutes']}" in script
        assert "docker login --username oauth2accesstoken" in script
        if len(vms) > 1:
            assert f'"index":{index}' in script and worker_addresses(len(vms))[-1] in script


# --- endpoint --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GCP_STACKS)
def test_endpoint_runs_the_function_image_with_config(name: str) -> None:
    run = stack(name)
    config = run.config["cloud-ai:endpoint"]
    service = only(run, SERVICE).inputs
    template = service["template"]
    (container,) = template["containers"]
    assert container["image"] == run.outputs["images"]["function"]
    assert container["ports"] == {"containerPort": 8080.0}
    assert {e["name"]: e["value"] for e in container["envs"]} == {
        "MODEL_STORE": run.outputs["storeUrl"],
        "MODEL_NAME": run.config["cloud-ai:workload"]["modelName"],
    }
    assert container["resources"]["limits"]["memory"] == f"{config['memoryMb']}Mi"
    assert template["timeout"] == f"{config['timeoutSeconds']}s"
    assert template["scaling"]["maxInstanceCount"] == config["maxConcurrency"]
    assert template["maxInstanceRequestConcurrency"] == 1
    assert service["invokerIamDisabled"] is False
    assert template["serviceAccount"].startswith(f"cloud-ai-{name}-endpoint@")


@pytest.mark.parametrize("name", GCP_STACKS)
def test_private_endpoint_has_no_public_invoker(name: str) -> None:
    assert stack(name).config["cloud-ai:endpoint"]["public"] is False
    assert stack(name).of_type(INVOKER) == []


@pytest.mark.parametrize("name", GCP_STACKS)
def test_endpoint_reads_only_its_model_prefix(name: str) -> None:
    run = stack(name)
    bucket = only(run, BUCKET).state["name"]
    model = run.config["cloud-ai:workload"]["modelName"]
    endpoint_sa = only(run, SERVICE).inputs["template"]["serviceAccount"]
    (grant,) = [
        g.inputs for g in run.of_type(BUCKET_MEMBER) if g.inputs["member"] == f"serviceAccount:{endpoint_sa}"
    ]
    assert grant["role"] == "roles/storage.objectViewer"
    expression = grant["condition"]["expression"]
    assert f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/models/{model}/")' in expression
    assert f'"storage.googleapis.com/objectListPrefix", "").startsWith("models/{model}/")' in expression


# --- alarms ----------------------------------------------------------------------------------------


def policies(name: str) -> dict[str, dict[str, Any]]:
    return {p.name.rsplit("-alarms-", 1)[1]: p.inputs for p in stack(name).of_type(POLICY)}


@pytest.mark.parametrize("name", GCP_STACKS)
def test_alert_policies_notify_the_channel(name: str) -> None:
    run = stack(name)
    channel = only(run, "gcp:monitoring/notificationChannel:NotificationChannel")
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": run.config["cloud-ai:alarms"]["email"]}
    assert set(policies(name)) == {"gpu-idle", "trainer-uptime", "fn-errors", "fn-p99"}
    for policy in policies(name).values():
        assert policy["notificationChannels"] == [channel.state["name"]]
        assert policy["documentation"]["content"]


@pytest.mark.parametrize("name", GCP_STACKS)
def test_gpu_idle_policy_matches_the_watchdog(name: str) -> None:
    (condition,) = policies(name)["gpu-idle"]["conditions"]
    threshold = condition["conditionThreshold"]
    assert 'metric.type = "agent.googleapis.com/gpu/utilization"' in threshold["filter"]
    assert f'metadata.user_labels.stack = "{name}"' in threshold["filter"]
    assert threshold["comparison"] == "COMPARISON_LT" and threshold["thresholdValue"] == 5
    minutes = stack(name).config["cloud-ai:trainer"]["idleStopMinutes"]
    assert threshold["duration"] == f"{minutes * 60}s"


@pytest.mark.parametrize("name", GCP_STACKS)
def test_trainer_uptime_policy(name: str) -> None:
    (condition,) = policies(name)["trainer-uptime"]["conditions"]
    assert (
        'metric.type = "compute.googleapis.com/instance/uptime_total"'
        in condition["conditionThreshold"]["filter"]
    )
    assert condition["conditionThreshold"]["comparison"] == "COMPARISON_GT"


@pytest.mark.parametrize("name", GCP_STACKS)
def test_endpoint_policies_watch_the_service(name: str) -> None:
    run = stack(name)
    service = only(run, SERVICE).state["name"]
    alarms = run.config["cloud-ai:alarms"]
    (errors,) = policies(name)["fn-errors"]["conditions"]
    ratio = errors["conditionThreshold"]
    assert f'resource.labels.service_name = "{service}"' in ratio["filter"]
    assert 'response_code_class = "5xx"' in ratio["filter"]
    assert "5xx" not in ratio["denominatorFilter"] and service in ratio["denominatorFilter"]
    assert ratio["thresholdValue"] == pytest.approx(alarms["errorRatePercent"] / 100)
    (latency,) = policies(name)["fn-p99"]["conditions"]
    assert latency["conditionThreshold"]["aggregations"][0]["perSeriesAligner"] == "ALIGN_PERCENTILE_99"
    assert latency["conditionThreshold"]["thresholdValue"] == alarms["p99LatencyMs"]
    assert 'metric.type = "run.googleapis.com/request_latencies"' in latency["conditionThreshold"]["filter"]


@pytest.mark.parametrize("name", GCP_STACKS)
def test_budget_watches_this_project_at_80_and_100_percent(name: str) -> None:
    run = stack(name)
    budget = only(run, "gcp:billing/budget:Budget").inputs
    alarms = run.config["cloud-ai:alarms"]
    assert budget["billingAccount"] == alarms["billingAccount"]
    assert budget["amount"]["specifiedAmount"] == {
        "currencyCode": "USD",
        "units": str(alarms["monthlyBudgetUsd"]),
    }
    assert sorted(r["thresholdPercent"] for r in budget["thresholdRules"]) == [0.8, 1.0]
    assert budget["budgetFilter"]["projects"] == ["projects/123456789012"]
    channel = only(run, "gcp:monitoring/notificationChannel:NotificationChannel").state["name"]
    assert budget["allUpdatesRule"]["monitoringNotificationChannels"] == [channel]


@pytest.mark.parametrize("name", GCP_STACKS)
def test_dashboard_charts_trainers_and_endpoint(name: str) -> None:
    import json

    dashboard = json.loads(only(stack(name), "gcp:monitoring/dashboard:Dashboard").inputs["dashboardJson"])
    filters = [
        t["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for t in dashboard["mosaicLayout"]["tiles"]
    ]
    assert len(filters) == 4
    assert any("gpu/utilization" in f for f in filters)
    assert any("request_latencies" in f and only(stack(name), SERVICE).state["name"] in f for f in filters)


# The API behind each provider module the stacks use: a new resource type whose API is missing fails here.
API_OF_MODULE = {
    "artifactregistry": "artifactregistry.googleapis.com",
    "billing": "billingbudgets.googleapis.com",
    "cloudrunv2": "run.googleapis.com",
    "compute": "compute.googleapis.com",
    "monitoring": "monitoring.googleapis.com",
    "projects": "cloudresourcemanager.googleapis.com",
    "serviceaccount": "iam.googleapis.com",
    "storage": "storage.googleapis.com",
}


@pytest.mark.parametrize("name", GCP_STACKS)
def test_every_api_the_stack_calls_is_enabled_in_its_project_and_left_on_at_destroy(name: str) -> None:
    run = stack(name)
    modules = {r.type.split(":")[1].split("/")[0] for r in run.resources if r.type.startswith("gcp:")}
    apis = {a.inputs["service"]: a.inputs for a in run.of_type(API)}
    assert {API_OF_MODULE[module] for module in modules} <= set(apis) == set(REQUIRED_APIS)
    for api in apis.values():
        assert api["project"] == run.config["gcp:project"]
        assert api["disableOnDestroy"] is False


def test_nothing_is_declared_before_the_apis_it_needs_are_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enabling an API takes a while: with slow enablements, every other resource must still come after."""
    enable = CloudMocks.new_resource

    def slow_enable(self: CloudMocks, args: Any) -> tuple[str, dict[str, Any]]:
        if args.typ == API:
            time.sleep(0.2)
        return enable(self, args)

    monkeypatch.setattr(CloudMocks, "new_resource", slow_enable)
    order = [r.type for r in run_stack("gcp-dev").resources]
    last_api = max(i for i, t in enumerate(order) if t == API)
    first_other = min(i for i, t in enumerate(order) if t not in (API, "cloud-ai:gcp:Project"))
    assert last_api < first_other, order[: last_api + 1]

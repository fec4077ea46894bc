"""What the Google Cloud provider computes for the resources and invokes cloud-ai uses.

Values follow the shapes the real APIs return (full resource names, self links, service-account emails,
`*.run.app` URIs, image digests), so resources that read them are declared just as in `pulumi up`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    from collections.abc import Callable

    from infra.mocks import CloudMocks, Computed

PROJECT_NUMBER = "123456789012"
COMPUTE = "https://www.googleapis.com/compute/v1"


def project_of(inputs: dict[str, Any]) -> str:
    """The resource's own `project` input, else the stack's `gcp:project`, as the provider resolves it."""
    return str(inputs.get("project") or pulumi.Config("gcp").get("project") or "mock-project")


def _digits(*parts: str) -> str:
    return str(int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:12], 16))


def default_outputs(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """Every GCP resource has a name (auto-named with a suffix when not given) and a project."""
    from infra.mocks import short_hash

    physical = inputs.get("name") or f"{name}-{short_hash(name)}"
    project = project_of(inputs)
    return {
        "name": physical,
        "project": project,
        "selfLink": f"{COMPUTE}/projects/{project}/global/mock/{physical}",
    }


def _regional(kind: str) -> Computed:
    """Compute resources in a region (subnetworks, routers, placement policies)."""

    def computed(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
        physical = inputs.get("name") or default_outputs(name, inputs, mocks)["name"]
        region = inputs.get("region") or mocks.region
        path = f"projects/{project_of(inputs)}/regions/{region}/{kind}/{physical}"
        return {"name": physical, "region": region, "selfLink": f"{COMPUTE}/{path}"}

    return computed


def _network(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    physical = inputs.get("name") or default_outputs(name, inputs, mocks)["name"]
    path = f"projects/{project_of(inputs)}/global/networks/{physical}"
    return {"name": physical, "selfLink": f"{COMPUTE}/{path}"}


def _firewall(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    physical = inputs.get("name") or default_outputs(name, inputs, mocks)["name"]
    path = f"projects/{project_of(inputs)}/global/firewalls/{physical}"
    return {"name": physical, "selfLink": f"{COMPUTE}/{path}"}


def _instance(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """An instance: its numeric id, self link and each interface's private IP (given or allocated)."""
    physical = inputs.get("name") or default_outputs(name, inputs, mocks)["name"]
    zone = inputs.get("zone") or pulumi.Config("gcp").get("zone") or f"{mocks.region}-a"
    path = f"projects/{project_of(inputs)}/zones/{zone}/instances/{physical}"
    interfaces = [
        {**nic, "networkIp": nic.get("networkIp") or f"10.128.0.{index + 2}", "name": f"nic{index}"}
        for index, nic in enumerate(inputs.get("networkInterfaces") or [])
    ]
    return {
        "name": physical,
        "zone": zone,
        "instanceId": _digits("instance", physical),
        "selfLink": f"{COMPUTE}/{path}",
        "networkInterfaces": interfaces,
        "currentStatus": "RUNNING",
    }


def _service_account(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    email = f"{inputs['accountId']}@{project_of(inputs)}.iam.gserviceaccount.com"
    return {
        "email": email,
        "member": f"serviceAccount:{email}",
        "name": f"projects/{project_of(inputs)}/serviceAccounts/{email}",
        "uniqueId": _digits("sa", email),
    }


def _bucket(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    physical = inputs.get("name") or default_outputs(name, inputs, mocks)["name"]
    return {
        "name": physical,
        "url": f"gs://{physical}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{physical}",
    }


def _repository(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    location = inputs.get("location") or mocks.region
    repository_id = inputs.get("repositoryId") or default_outputs(name, inputs, mocks)["name"]
    return {
        "name": repository_id,
        "registryUri": f"{location}-docker.pkg.dev/{project_of(inputs)}/{repository_id}",
    }


def _image(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """A pushed image: its manifest digest and the first tag's repository pinned to it."""
    tags = inputs.get("tags") or [name]
    digest = "sha256:" + hashlib.sha256(f"{name}/{inputs.get('target')}".encode()).hexdigest()
    repository = tags[0].rsplit(":", 1)[0]
    return {"digest": digest, "ref": f"{repository}@{digest}"}


def _cloud_run(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    physical = inputs.get("name") or default_outputs(name, inputs, mocks)["name"]
    location = inputs.get("location") or mocks.region
    return {
        "name": physical,
        "uri": f"https://{physical}-{_digits('run', physical)[:10]}-uc.a.run.app",
        "urls": [f"https://{physical}-{PROJECT_NUMBER}.{location}.run.app"],
    }


def _numbered(collection: str) -> Computed:
    """Monitoring resources are named `projects/<project>/<collection>/<server-assigned id>`."""

    def computed(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
        path = f"projects/{project_of(inputs)}/{collection}/{_digits(collection, name)}"
        return {"name": path, "id": path}

    return computed


def _dashboard(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"id": f"projects/{PROJECT_NUMBER}/dashboards/{_digits('dashboard', name)}"}


def _budget(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    path = f"billingAccounts/{inputs.get('billingAccount')}/budgets/{_digits('budget', name)}"
    return {"name": path, "id": path}


def _iam_member(name: str, inputs: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    return {"etag": "BwY" + _digits("etag", name)[:8]}


COMPUTED: dict[str, Computed] = {
    "gcp:storage/bucket:Bucket": _bucket,
    "gcp:storage/bucketIAMMember:BucketIAMMember": _iam_member,
    "gcp:artifactregistry/repository:Repository": _repository,
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": _iam_member,
    "docker-build:index:Image": _image,
    "gcp:compute/network:Network": _network,
    "gcp:compute/subnetwork:Subnetwork": _regional("subnetworks"),
    "gcp:compute/router:Router": _regional("routers"),
    "gcp:compute/routerNat:RouterNat": _regional("routers"),
    "gcp:compute/resourcePolicy:ResourcePolicy": _regional("resourcePolicies"),
    "gcp:compute/firewall:Firewall": _firewall,
    "gcp:compute/instance:Instance": _instance,
    "gcp:serviceaccount/account:Account": _service_account,
    "gcp:projects/iAMMember:IAMMember": _iam_member,
    "gcp:monitoring/notificationChannel:NotificationChannel": _numbered("notificationChannels"),
    "gcp:monitoring/alertPolicy:AlertPolicy": _numbered("alertPolicies"),
    "gcp:monitoring/dashboard:Dashboard": _dashboard,
    "gcp:billing/budget:Budget": _budget,
    "gcp:cloudrunv2/service:Service": _cloud_run,
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": _iam_member,
}


def _client_config(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    """The caller's credentials as the provider sees them: an OAuth access token and its defaults."""
    return {
        "accessToken": "ya29.mock-access-token",
        "project": project_of(args),
        "region": mocks.region,
        "zone": pulumi.Config("gcp").get("zone") or f"{mocks.region}-a",
        "id": "mock-client-config",
    }


def _project(args: dict[str, Any], mocks: CloudMocks) -> dict[str, Any]:
    project = str(args.get("projectId") or project_of(args))
    return {"projectId": project, "number": PROJECT_NUMBER, "name": project, "id": f"projects/{project}"}


CALLS: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = {
    "gcp:organizations/getClientConfig:getClientConfig": _client_config,
    "gcp:organizations/getProject:getProject": _project,
}

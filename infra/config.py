"""The one place that reads stack configuration: typed, validated settings, or a ConfigError naming the key.

Everything is checked before a single resource is declared, so a typo never leaves half a stack behind.
`settings_from(values, stack)` is pure (tests and `cloud-ai plan` call it with plain dicts);
`load_settings()` feeds it from `pulumi.Config` inside a Pulumi program.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.pricing import CLOUDS, Offer, catalog

NAMESPACE = "cloud-ai"
ENVIRONMENTS = ("dev", "prod")
BACKBONES = ("mobilenet_v2", "efficientnet_b0", "small-cnn")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MISSING = object()

# Keys of the cloud's own provider namespace that cloud-ai needs, per cloud.
LOCATION_KEYS: dict[str, tuple[str, ...]] = {
    "aws": ("aws:region",),
    "gcp": ("gcp:project", "gcp:region", "gcp:zone"),
    "azure": ("azure-native:location",),
}


class ConfigError(ValueError):
    """A stack config value that cannot be deployed; renders as `KEY = VALUE is not allowed: expected ...`."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        shown = "(missing)" if value is MISSING or value is None else _show(value)
        super().__init__(f"{key} = {shown} is not allowed: expected {expected}")
        self.key = key
        self.value = value


def _show(value: object) -> str:
    return json.dumps(value) if isinstance(value, dict | list | bool) else str(value)


@dataclass(frozen=True)
class Location:
    """Where the stack lives: AWS/Azure region, or GCP project + region + zone."""

    region: str
    zone: str | None = None
    project: str | None = None


@dataclass(frozen=True)
class Trainer:
    instance_type: str
    gpus_per_node: int
    gpu: str
    hourly_usd_per_node: float
    accelerator: str | None = None
    accelerator_count: int = 0
    nodes: int = 1
    spot: bool = True
    disk_gb: int = 200
    idle_stop_minutes: int = 30

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def hourly_usd(self) -> float:
        return self.nodes * self.hourly_usd_per_node


@dataclass(frozen=True)
class Workload:
    model_name: str = "image-classifier"
    dataset: str = "flowers"
    backbone: str = "mobilenet_v2"
    image_size: int = 224
    epochs: int = 10


@dataclass(frozen=True)
class Endpoint:
    memory_mb: int = 3008
    timeout_seconds: int = 60
    max_concurrency: int = 10
    public: bool = False


@dataclass(frozen=True)
class Alarms:
    email: str
    monthly_budget_usd: float = 500.0
    p99_latency_ms: int = 2000
    error_rate_percent: float = 1.0
    billing_account: str | None = None


@dataclass(frozen=True)
class Limits:
    max_gpus: int = 8
    max_hourly_usd: float = 20.0


@dataclass(frozen=True)
class Settings:
    """Everything a cloud's `deploy()` needs; no module but this one touches pulumi.Config."""

    project: str
    stack: str
    cloud: str
    environment: str
    owner: str
    cost_center: str
    location: Location
    trainer: Trainer
    workload: Workload
    endpoint: Endpoint
    alarms: Alarms
    limits: Limits
    extra_tags: dict[str, str] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        """The common tags every taggable resource carries (GCP turns them into labels)."""
        return {
            "project": self.project,
            "stack": self.stack,
            "owner": self.owner,
            "cost-center": self.cost_center,
            "managed-by": "pulumi",
        }

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"


class _Section:
    """Typed reads from one config object (`cloud-ai:trainer`), each error naming `cloud-ai:trainer.KEY`."""

    def __init__(self, key: str, raw: object, allowed: tuple[str, ...]) -> None:
        if raw is MISSING or raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(key, raw, "an object with keys " + ", ".join(allowed))
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}", raw[unknown[0]], "one of the keys " + ", ".join(allowed))
        self.key = key
        self.raw: dict[str, Any] = raw

    def name(self, item: str) -> str:
        return f"{self.key}.{item}"

    def text(self, item: str, default: str | None = None) -> str:
        value = self.raw.get(item, default)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.name(item), value, "a non-empty string")
        return value.strip()

    def optional_text(self, item: str) -> str | None:
        return self.text(item) if item in self.raw else None

    def whole(self, item: str, default: int, low: int, high: int | None = None) -> int:
        value = self.raw.get(item, default)
        number = _as_int(value)
        if number is None or number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ConfigError(self.name(item), value, f"a whole number {bound}")
        return number

    def amount(self, item: str, default: float, above: float = 0.0, high: float | None = None) -> float:
        value = self.raw.get(item, default)
        number = _as_float(value)
        if number is None or number <= above or (high is not None and number > high):
            bound = f"> {above:g}" + (f" and <= {high:g}" if high is not None else "")
            raise ConfigError(self.name(item), value, f"a number {bound}")
        return number

    def flag(self, item: str, default: bool) -> bool:
        value = self.raw.get(item, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(self.name(item), value, "true or false")


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _top(values: Mapping[str, Any], item: str, default: object = MISSING) -> Any:
    return values.get(f"{NAMESPACE}:{item}", default)


def _required_text(values: Mapping[str, Any], key: str, expected: str) -> str:
    value = values.get(key, MISSING)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, expected)
    return value.strip()


def _choice(values: Mapping[str, Any], item: str, choices: tuple[str, ...]) -> str:
    value = _top(values, item)
    if value not in choices:
        raise ConfigError(f"{NAMESPACE}:{item}", value, " | ".join(choices))
    return str(value)


def _location(values: Mapping[str, Any], cloud: str) -> Location:
    if cloud == "gcp":
        return Location(
            project=_required_text(values, "gcp:project", "the GCP project id the stack deploys into"),
            region=_required_text(values, "gcp:region", "a GCP region such as us-central1"),
            zone=_required_text(values, "gcp:zone", "a GCP zone such as us-central1-a (GPUs are zonal)"),
        )
    if cloud == "azure":
        return Location(
            region=_required_text(values, "azure-native:location", "an Azure region such as eastus")
        )
    return Location(region=_required_text(values, "aws:region", "an AWS region such as us-east-1"))


def _gpu_offer(cloud: str, region: str, section: _Section) -> tuple[Offer, Offer | None, int]:
    """The machine type's catalog row, the attached accelerator's (if any) and the GPUs per node."""
    prices = catalog(cloud)
    instance_type = section.text("instanceType")
    offer = prices.instance(instance_type, region)
    gpu_types = [t for t in prices.types("instance") if (o := prices.instance(t, region)) and o.gpus]
    if offer is None:
        raise ConfigError(
            section.name("instanceType"),
            instance_type,
            f"a GPU machine type listed in infra/pricing/{cloud}.csv ({', '.join(gpu_types[:6])}, ...); "
            "add a row there for a type it lacks",
        )
    accelerator = section.optional_text("accelerator")
    count = section.whole("acceleratorCount", 1 if accelerator else 0, 0, 16)
    if offer.gpus:
        if accelerator not in (None, offer.gpu) or count not in (0, offer.gpus):
            raise ConfigError(
                section.name("accelerator"),
                f"{accelerator} x {count}",
                f"nothing, or {offer.gpu} x {offer.gpus}: {instance_type} has its GPUs built in",
            )
        return offer, None, offer.gpus
    return offer, *_attached_gpu(cloud, region, section, instance_type, accelerator, count, gpu_types)


def _attached_gpu(
    cloud: str,
    region: str,
    section: _Section,
    instance_type: str,
    accelerator: str | None,
    count: int,
    gpu_types: list[str],
) -> tuple[Offer, int]:
    prices = catalog(cloud)
    family = instance_type.split("-")[0].split(".")[0]
    offers = [prices.accelerator(t, region) for t in prices.types("accelerator")]
    attachable = [o.type for o in offers if o is not None and family in o.families]
    if not attachable:
        raise ConfigError(
            section.name("instanceType"),
            instance_type,
            f"a machine type with an NVIDIA GPU ({', '.join(gpu_types[:6])}, ...)",
        )
    if accelerator is None or accelerator not in attachable:
        raise ConfigError(
            section.name("accelerator"),
            accelerator,
            f"a GPU that attaches to {family}: {', '.join(attachable)}",
        )
    if count not in (1, 2, 4, 8):
        raise ConfigError(section.name("acceleratorCount"), count, "1, 2, 4 or 8")
    offer = prices.accelerator(accelerator, region)
    assert offer is not None
    return offer, count


def _trainer(values: Mapping[str, Any], cloud: str, region: str) -> Trainer:
    section = _Section(
        f"{NAMESPACE}:trainer",
        _top(values, "trainer"),
        ("instanceType", "accelerator", "acceleratorCount", "nodes", "spot", "diskGb", "idleStopMinutes"),
    )
    offer, attached, gpus = _gpu_offer(cloud, region, section)
    spot = section.flag("spot", True)
    attached_usd = attached.hourly_usd(spot) * gpus if attached else 0.0
    return Trainer(
        instance_type=offer.type,
        gpus_per_node=gpus,
        gpu=attached.gpu if attached else offer.gpu,
        hourly_usd_per_node=round(offer.hourly_usd(spot) + attached_usd, 4),
        accelerator=attached.type if attached else section.optional_text("accelerator"),
        accelerator_count=gpus if attached else section.whole("acceleratorCount", 0, 0, 16),
        nodes=section.whole("nodes", 1, 1, 64),
        spot=spot,
        disk_gb=section.whole("diskGb", 200, 50, 16384),
        idle_stop_minutes=section.whole("idleStopMinutes", 30, 5, 1440),
    )


def _workload(values: Mapping[str, Any]) -> Workload:
    section = _Section(
        f"{NAMESPACE}:workload",
        _top(values, "workload"),
        ("modelName", "dataset", "backbone", "imageSize", "epochs"),
    )
    model_name = section.text("modelName", Workload.model_name)
    if not MODEL_NAME.match(model_name):
        raise ConfigError(section.name("modelName"), model_name, "lowercase letters, digits and '-' (<= 63)")
    backbone = section.text("backbone", Workload.backbone)
    if backbone not in BACKBONES:
        raise ConfigError(section.name("backbone"), backbone, " | ".join(BACKBONES))
    return Workload(
        model_name=model_name,
        dataset=section.text("dataset", Workload.dataset),
        backbone=backbone,
        image_size=section.whole("imageSize", Workload.image_size, 32, 1024),
        epochs=section.whole("epochs", Workload.epochs, 1, 10000),
    )


def _endpoint(values: Mapping[str, Any], environment: str) -> Endpoint:
    section = _Section(
        f"{NAMESPACE}:endpoint",
        _top(values, "endpoint"),
        ("memoryMb", "timeoutSeconds", "maxConcurrency", "public"),
    )
    public = section.flag("public", False)
    if public and environment == "prod":
        raise ConfigError(section.name("public"), True, "false in prod: prod endpoints authenticate callers")
    return Endpoint(
        memory_mb=section.whole("memoryMb", Endpoint.memory_mb, 128, 10240),
        timeout_seconds=section.whole("timeoutSeconds", Endpoint.timeout_seconds, 1, 900),
        max_concurrency=section.whole("maxConcurrency", Endpoint.max_concurrency, 1, 1000),
        public=public,
    )


def _alarms(values: Mapping[str, Any], cloud: str) -> Alarms:
    section = _Section(
        f"{NAMESPACE}:alarms",
        _top(values, "alarms"),
        ("email", "monthlyBudgetUsd", "p99LatencyMs", "errorRatePercent", "billingAccount"),
    )
    email = section.raw.get("email", MISSING)
    if not isinstance(email, str) or not EMAIL.match(email):
        raise ConfigError(section.name("email"), email, "an email address such as ml-oncall@example.com")
    billing_account = section.optional_text("billingAccount")
    if cloud == "gcp" and billing_account is None:
        raise ConfigError(
            section.name("billingAccount"), None, "the billing account id the GCP budget watches"
        )
    return Alarms(
        email=email,
        monthly_budget_usd=section.amount("monthlyBudgetUsd", Alarms.monthly_budget_usd),
        p99_latency_ms=section.whole("p99LatencyMs", Alarms.p99_latency_ms, 1),
        error_rate_percent=section.amount("errorRatePercent", Alarms.error_rate_percent, 0.0, 100.0),
        billing_account=billing_account,
    )


def _limits(values: Mapping[str, Any]) -> Limits:
    section = _Section(f"{NAMESPACE}:limits", _top(values, "limits"), ("maxGpus", "maxHourlyUsd"))
    return Limits(
        max_gpus=section.whole("maxGpus", Limits.max_gpus, 1),
        max_hourly_usd=section.amount("maxHourlyUsd", Limits.max_hourly_usd),
    )


def settings_from(values: Mapping[str, Any], stack: str, project: str = "cloud-ai") -> Settings:
    """Validate a stack's config (keys like `cloud-ai:trainer`, `aws:region`; objects already parsed)."""
    cloud = _choice(values, "cloud", CLOUDS)
    environment = _choice(values, "environment", ENVIRONMENTS)
    location = _location(values, cloud)
    trainer = _trainer(values, cloud, location.region)
    limits = _limits(values)
    if trainer.total_gpus > limits.max_gpus:
        raise ConfigError(
            f"{NAMESPACE}:trainer.nodes",
            trainer.nodes,
            f"at most {limits.max_gpus} GPUs in all (cloud-ai:limits.maxGpus); "
            f"{trainer.nodes} x {trainer.instance_type} is {trainer.total_gpus}",
        )
    return Settings(
        project=project,
        stack=stack,
        cloud=cloud,
        environment=environment,
        owner=_required_text(values, f"{NAMESPACE}:owner", "who owns the stack (a team or an email)"),
        cost_center=_required_text(values, f"{NAMESPACE}:costCenter", "the cost center billed for it"),
        location=location,
        trainer=trainer,
        workload=_workload(values),
        endpoint=_endpoint(values, environment),
        alarms=_alarms(values, cloud),
        limits=limits,
    )


CONFIG_KEYS = (
    "cloud",
    "environment",
    "owner",
    "costCenter",
    "trainer",
    "workload",
    "endpoint",
    "alarms",
    "limits",
)


def load_settings() -> Settings:
    """Read the running stack's config through pulumi.Config and validate it."""
    import pulumi

    values: dict[str, Any] = {}
    own = pulumi.Config(NAMESPACE)
    for key in CONFIG_KEYS:
        raw = own.get(key)
        if raw is not None:
            values[f"{NAMESPACE}:{key}"] = _parse(raw)
    for keys in LOCATION_KEYS.values():
        for full_key in keys:
            namespace, key = full_key.split(":")
            value = pulumi.Config(namespace).get(key)
            if value is not None:
                values[full_key] = value
    return settings_from(values, pulumi.get_stack(), pulumi.get_project())


def _parse(raw: str) -> Any:
    """Structured values arrive as JSON text; plain strings stay strings."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw

"""An engine-free Pulumi runtime: runs the program for one stack file with no CLI and no credentials.

The mocks answer like the real providers do: every resource gets an id and the computed outputs
(arn, name, url, ...) that resources depending on it read; an echo-only mock would leave those unknown
and silently drop the dependants. Per-cloud computed outputs live in infra/mocks/<cloud>.py.
Tests (`tests/infra`) and `cloud-ai plan` both run stacks through `run_stack`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import runpy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, _sync_await
from pulumi.runtime.stack import run_pulumi_func

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"
PROGRAM = REPO / "infra"
PROJECT = "cloud-ai"

Computed = Callable[[str, dict[str, Any], "CloudMocks"], dict[str, Any]]


@dataclass
class Declared:
    """One resource the program declared: its type token, name, inputs (camelCase) and mocked state."""

    urn: str
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]

    @property
    def parents(self) -> list[str]:
        """The component types this resource is nested in, outermost first."""
        qualified = self.urn.split("::")[2]
        return qualified.split("$")[:-1]


@dataclass
class CloudMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes with what the cloud's provider would compute."""

    cloud: str
    region: str
    declared: list[Declared] = field(default_factory=list)

    def __post_init__(self) -> None:
        module = importlib.import_module(f"infra.mocks.{self.cloud}")
        self._computed: dict[str, Computed] = module.COMPUTED
        self._calls: dict[str, Callable[[dict[str, Any], CloudMocks], dict[str, Any]]] = module.CALLS
        self._default: Computed = module.default_outputs

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        state = {**self._default(args.name, inputs, self), **inputs}
        computed = self._computed.get(args.typ)
        if computed:
            state.update(computed(args.name, inputs, self))
        # A computed id (an ARM id, a GCP resource path) is the provider's id, as `resource.id` reads it.
        resource_id = str(state.get("id") or f"{args.name}-{short_hash(args.typ, args.name)}")
        state["id"] = resource_id
        self.declared.append(Declared("", args.typ, args.name, resource_id, inputs, state))
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        answer = self._calls.get(args.token)
        if answer is None:
            raise NotImplementedError(
                f"no mock for invoke {args.token}: add it to infra/mocks/{self.cloud}.py"
            )
        return answer(dict(args.args), self), []


def short_hash(*parts: str) -> str:
    """A stable suffix, like the random one providers add to auto-named resources."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:7]


@dataclass
class StackRun:
    """What one stack declared and exported."""

    stack: str
    config: dict[str, Any]
    resources: list[Declared]
    outputs: dict[str, Any]
    program: dict[str, Any]

    def of_type(self, type_token: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_token]

    def duplicate_names(self) -> list[tuple[str, str]]:
        """(type, name) pairs declared twice: the mocks accept them, a real engine rejects the stack."""
        counts = Counter((r.type, r.name) for r in self.resources)
        return sorted(key for key, count in counts.items() if count > 1)


def stack_file(stack: str) -> Path:
    """stacks/Pulumi.<stack>.yaml for a stack name; a path is taken as it is."""
    path = Path(stack)
    return path if path.suffix in (".yaml", ".yml") else STACKS / f"Pulumi.{stack}.yaml"


def stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").rsplit(".", 1)[0]


def read_config(path: Path) -> dict[str, Any]:
    """The `config:` block of a stack file, keys as written (`cloud-ai:trainer`, `aws:region`)."""
    document = yaml.safe_load(path.read_text()) or {}
    return dict(document.get("config") or {})


def as_pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    """The strings the Pulumi CLI hands a program: objects and numbers as JSON, strings as they are."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def location_of(config: dict[str, Any]) -> str:
    for key in ("aws:region", "gcp:region", "azure-native:location"):
        if key in config:
            return str(config[key])
    return "us-east-1"


def install_mocks(stack: str, config: dict[str, Any]) -> CloudMocks:
    """Point the Pulumi runtime at fresh mocks and CONFIG, as `pulumi preview` would for STACK."""
    cloud = str(config.get("cloud-ai:cloud", "aws"))
    mocks = CloudMocks(cloud if cloud in ("aws", "gcp", "azure") else "aws", location_of(config))
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    pulumi.runtime.set_all_config(as_pulumi_config(config))
    return mocks


def run_program() -> dict[str, Any]:
    """Run infra/ the way the Pulumi CLI does: the folder as __main__, infra/ first on sys.path."""
    return runpy.run_path(str(PROGRAM), run_name="__main__")


def run_stack(stack: str, config: dict[str, Any] | None = None) -> StackRun:
    """Run the program for STACK (a name or a stack file) to completion under the mocks."""
    path = stack_file(stack)
    name = stack_name(path)
    config = read_config(path) if config is None else config
    mocks = install_mocks(name, config)
    program: dict[str, Any] = {}

    def run() -> None:
        program.update(run_program())

    _sync_await(run_pulumi_func(run))
    outputs = _resolved_outputs()
    urns = mocks_urns()
    for resource in mocks.declared:
        resource.urn = urns.get((resource.type, resource.name), "")
    return StackRun(name, config, list(mocks.declared), outputs, program)


def mocks_urns() -> dict[tuple[str, str], str]:
    monitor: Any = runtime_settings.get_monitor()
    registered = monitor.get_registered_resources() if monitor is not None else {}
    return {(urn.split("::")[2].split("$")[-1], urn.split("::")[3]): urn for urn in registered}


def _resolved_outputs() -> dict[str, Any]:
    root = runtime_settings.get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {}) or {}
    return {key: _sync_await(pulumi.Output.from_input(value).future()) for key, value in exported.items()}

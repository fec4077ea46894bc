"""GCP config: bad values are refused with a message naming the key, before any resource is declared;
variants (N1 with attached GPUs, a public endpoint) declare what they should."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pulumi.runtime.mocks import _sync_await
from pulumi.runtime.stack import run_pulumi_func

from infra.config import ConfigError, settings_from
from infra.mocks import StackRun, install_mocks, read_config, run_program, stack_file

BASE = read_config(stack_file("gcp-dev"))


def with_changes(**changes: Any) -> dict[str, Any]:
    """gcp-dev's config with top-level keys replaced (None removes) and trainer/alarms keys merged."""
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in BASE.items()}
    for key, value in changes.items():
        full = key.replace("__", ":", 1)
        if value is None:
            config.pop(full, None)
        elif isinstance(value, dict) and isinstance(config.get(full), dict):
            config[full] = {k: v for k, v in {**config[full], **value}.items() if v is not None}
        else:
            config[full] = value
    return config


BAD_CONFIGS = {
    "missing project": (with_changes(gcp__project=None), "gcp:project = (missing)"),
    "missing zone": (with_changes(gcp__zone=None), "gcp:zone = (missing)"),
    "accelerator contradicts g2": (
        with_changes(**{"cloud-ai__trainer": {"accelerator": "nvidia-tesla-t4", "acceleratorCount": 1}}),
        "cloud-ai:trainer.accelerator = nvidia-tesla-t4 x 1 is not allowed: "
        "expected nothing, or nvidia-l4 x 1",
    ),
    "count contradicts g2": (
        with_changes(**{"cloud-ai__trainer": {"accelerator": "nvidia-l4", "acceleratorCount": 4}}),
        "g2-standard-8 has its GPUs built in",
    ),
    "gpu not offered with n1": (
        with_changes(**{"cloud-ai__trainer": {"instanceType": "n1-standard-8", "accelerator": "nvidia-l4"}}),
        "cloud-ai:trainer.accelerator = nvidia-l4 is not allowed: expected a GPU that attaches to n1",
    ),
    "n1 without gpu": (
        with_changes(**{"cloud-ai__trainer": {"instanceType": "n1-standard-8"}}),
        "cloud-ai:trainer.accelerator = (missing)",
    ),
    "missing billing account": (
        with_changes(**{"cloud-ai__alarms": {"billingAccount": None}}),
        "cloud-ai:alarms.billingAccount = (missing) is not allowed: expected the billing account id",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_settings_refuse_bad_config(case: str) -> None:
    config, message = BAD_CONFIGS[case]
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_from(config, "gcp-dev")


def run_only() -> None:
    """The program, as the engine runs it (its globals are not needed here)."""
    run_program()


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_program_declares_nothing_on_bad_config(case: str) -> None:
    config, message = BAD_CONFIGS[case]
    mocks = install_mocks("gcp-dev", config)
    with pytest.raises(ConfigError) as refused:
        _sync_await(run_pulumi_func(run_only))
    assert message in str(refused.value)
    assert mocks.declared == []


N1_T4 = with_changes(
    **{
        "cloud-ai__trainer": {
            "instanceType": "n1-standard-8",
            "accelerator": "nvidia-tesla-t4",
            "acceleratorCount": 2,
        }
    }
)


def test_n1_gets_its_gpus_as_guest_accelerators(
    run_config: Callable[[str, dict[str, Any]], StackRun],
) -> None:
    run = run_config("gcp-dev", N1_T4)
    (vm,) = run.of_type("gcp:compute/instance:Instance")
    assert vm.inputs["machineType"] == "n1-standard-8"
    assert vm.inputs["guestAccelerators"] == [{"type": "nvidia-tesla-t4", "count": 2.0}]
    assert vm.inputs["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_public_endpoint_grants_all_users_invoke(
    run_config: Callable[[str, dict[str, Any]], StackRun],
) -> None:
    run = run_config("gcp-dev", with_changes(**{"cloud-ai__endpoint": {"public": True}}))
    (invoker,) = run.of_type("gcp:cloudrunv2/serviceIamMember:ServiceIamMember")
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    assert invoker.inputs["member"] == "allUsers" and invoker.inputs["role"] == "roles/run.invoker"
    assert invoker.inputs["name"] == service.state["name"]
    assert run.duplicate_names() == []
